"""Progress reporting for long runs: a tqdm bar on a terminal or in a Jupyter notebook, nothing otherwise.

In a notebook the bar is a widget when ipywidgets is installed (the ``notebook`` extra) and a text
bar otherwise: stochdyn picks the text bar itself rather than letting ``tqdm.auto`` try the widget
and warn "IProgress not found".
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

__all__ = ["progress_bar", "in_notebook", "AUTO_PROGRESS_WORK"]

#: replica-steps above which a run shows a bar when ``progress=None`` (on a terminal or in a notebook)
AUTO_PROGRESS_WORK = 2e9


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def in_notebook() -> bool:
    """True inside a Jupyter kernel (an IPython shell with a kernel; a terminal IPython has none)."""
    ipython = sys.modules.get("IPython")  # never imported here: only an IPython session has it loaded
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def _bar_class(notebook: bool) -> Any:
    if notebook and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm


def progress_bar(progress: bool | None, total: int, work: float, desc: str) -> Any:
    """A bar over ``total`` steps: shown if ``progress`` is True, or if it is None and the run is long
    (``work`` replica-steps >= AUTO_PROGRESS_WORK) and someone watches (stderr is a terminal, or the
    run is in a Jupyter notebook)."""
    notebook = in_notebook()
    show = progress if progress is not None else (work >= AUTO_PROGRESS_WORK and (notebook or sys.stderr.isatty()))
    if not show:
        return _NoBar()
    return _bar_class(notebook)(total=total, desc=desc, unit="step", unit_scale=True, leave=False,
                                dynamic_ncols=True)
