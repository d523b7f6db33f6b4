"""Warnings that point at the user's code, also when raised in Dask workers.

Every stochdyn warning goes through :func:`warn`, which sets the warning's ``stacklevel`` to the
first frame outside stochdyn: a :class:`~stochdyn.DivergenceWarning` raised through ``sd.sweep``,
a spec or the command line names the user's line, not ``sweeps.py`` or ``spec.py``. (Python 3.12's
``skip_file_prefixes`` does the same; stochdyn supports 3.11.)

Warnings raised in another process are lost unless collected: a task run on a Dask worker wraps
its function in :func:`call_collecting_warnings`, and the caller passes the collected records to
:func:`reemit`, which raises them again in the calling process, under the caller's warning filters.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, Callable, Iterable

__all__ = ["warn", "user_stacklevel", "call_collecting_warnings", "reemit"]

_PACKAGE = __name__.split(".")[0]


def _is_internal(frame: Any) -> bool:
    name = frame.f_globals.get("__name__", "")
    return name == _PACKAGE or name.startswith(_PACKAGE + ".")


def user_stacklevel() -> int:
    """The ``stacklevel`` for a ``warnings.warn`` call made by the function that calls this one: it
    skips that function and every stochdyn frame above it, so the warning names the first frame
    outside stochdyn (the outermost frame if every frame is stochdyn's)."""
    frame = sys._getframe(1)  # the function that will call warnings.warn: stacklevel 1
    level = 1
    while frame.f_back is not None and _is_internal(frame):
        frame = frame.f_back
        level += 1
    return level


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the first caller outside stochdyn."""
    warnings.warn(message, category, stacklevel=user_stacklevel())


def call_collecting_warnings(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> tuple[Any, list[tuple[type[Warning], str]]]:
    """Run ``fn(*args, **kwargs)`` and return ``(result, warnings)``: every warning it raised, as
    picklable ``(category, message)`` pairs, instead of showing them (for tasks run on Dask workers;
    pass the pairs to :func:`reemit` in the caller)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    return result, [(w.category, str(w.message)) for w in caught]


def reemit(records: Iterable[tuple[type[Warning], str]]) -> None:
    """Raise warnings collected by :func:`call_collecting_warnings` again, here, attributed to the
    first caller outside stochdyn and subject to this process's filters (so ``"error"`` or
    ``"ignore"`` set by the user apply to warnings from workers too)."""
    for category, message in records:
        warnings.warn(message, category, stacklevel=user_stacklevel())
