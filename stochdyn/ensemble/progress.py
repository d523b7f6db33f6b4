"""Progress reporting for long runs: a tqdm bar on a terminal, nothing otherwise."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_bar", "AUTO_PROGRESS_WORK"]

#: replica-steps above which a run shows a bar when ``progress=None`` and stderr is a terminal
AUTO_PROGRESS_WORK = 2e9


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(progress: bool | None, total: int, work: float, desc: str) -> Any:
    """A bar over ``total`` steps: shown if ``progress`` is True, or if it is None and the run is long
    (``work`` replica-steps >= AUTO_PROGRESS_WORK) and stderr is a terminal."""
    show = progress if progress is not None else (work >= AUTO_PROGRESS_WORK and sys.stderr.isatty())
    if not show:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a core dependency
        return _NoBar()
    return tqdm(total=total, desc=desc, unit="step", unit_scale=True, leave=False, dynamic_ncols=True)
