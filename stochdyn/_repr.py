"""Notebook display of integrators, landscapes and problems: a small table of their parameters.

:class:`HTMLRepr` gives any object with ``to_dict()`` (``{"type": name, **parameters}``) a
``_repr_html_``, which Jupyter shows instead of the one-line text ``repr``: the class name, what it
is (the first line of its docstring) and one row per parameter, long arrays shortened.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any, Callable

import numpy as np

__all__ = ["HTMLRepr", "short_value"]

#: longest shown value before it is cut with an ellipsis
MAX_CHARS = 120


def short_value(value: Any) -> str:
    """A one-line rendering of a parameter: arrays shortened NumPy-style, tables as compact JSON."""
    if isinstance(value, (list, tuple, np.ndarray)):
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            arr = None
        if arr is not None:
            text = np.array2string(arr, threshold=6, edgeitems=2, precision=4, separator=", ",
                                   max_line_width=10**6).replace("\n", "")
            return text if arr.ndim < 2 else f"{text}  (shape {arr.shape})"
    if isinstance(value, dict):
        text = json.dumps(value, separators=(", ", ": "), default=str)
    elif isinstance(value, float):
        text = f"{value:.6g}"
    else:
        text = str(value)
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"


def _summary(obj: Any) -> str:
    """First line of the class docstring, without reST roles and backticks."""
    doc = (type(obj).__doc__ or "").strip()
    first = doc.splitlines()[0] if doc else ""
    return re.sub(r":\w+:`([^`]*)`", r"\1", first).replace("``", "")


class HTMLRepr:
    """Mixin: ``_repr_html_`` from ``to_dict()``, for Jupyter."""

    #: what the mixin reads, defined by the classes that use it (declared only: no attribute here)
    to_dict: Callable[[], dict[str, Any]]

    def _repr_html_(self) -> str:
        params = {k: v for k, v in self.to_dict().items() if k != "type"}
        family = getattr(self, "family", "")
        kind = f" <span style='opacity:0.7'>({html.escape(family)})</span>" if family else ""
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
            f"<td style='text-align:left'><code>{html.escape(short_value(v))}</code></td></tr>"
            for k, v in params.items()
        )
        return (
            "<div class='stochdyn-repr'><table>"
            f"<caption style='text-align:left'><b>{html.escape(type(self).__name__)}</b>{kind}"
            f"<br><small>{html.escape(_summary(self))}</small></caption>"
            f"{rows}</table></div>"
        )
