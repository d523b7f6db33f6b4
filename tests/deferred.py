"""``@deferred(decorator)``: apply a stochdyn decorator to a test module's function on first use.

``@L.landscape``, ``@P.per_sample_loss``, ``@P.augmentation`` and ``@sd.stopping.rule`` compile the
user's function when they are applied (and check it there: that is what some tests test). Applied
at import, every pytest worker compiled every one of them while collecting the tests, most for tests
another worker runs (about 7 s per worker for the three modules that define the most). Deferred,
the decorator runs the first time the name is called, in the worker that needs it; the object made
is the one the decorator returns, so the tests see exactly what a user gets.
"""

from __future__ import annotations

import functools
from typing import Any, Callable


def deferred(decorator: Callable[[Callable], Any]) -> Callable[[Callable], Callable]:
    """``deferred(D)(fn)(*args)`` is ``D(fn)(*args)``, with ``D(fn)`` made once, on the first call."""

    def wrap(fn: Callable) -> Callable:
        made = functools.cache(lambda: decorator(fn))

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            return made()(*args, **kwargs)

        return call

    return wrap
