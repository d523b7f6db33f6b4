"""MathJax shipped with the site, so that equations render on a page opened without network.

Sphinx loads MathJax 3 from a CDN by default; a lab opened in a classroom without network, or a site
built from the sdist and opened from disk, then shows raw ``\\( ... \\)``. This extension points
``mathjax_path`` at ``_static/mathjax/tex-chtml.js`` and copies MathJax there when a build has
finished. The files come from the ``sphinx-mathjax-offline`` package (MathJax 3, Apache-2.0; in the
``docs`` extra); its own Sphinx extension does the same but does not declare itself safe for parallel
builds, which ``-j auto`` with ``-W`` turns into an error.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from sphinx.util.fileutil import copy_asset

#: where the pages look for MathJax, relative to _static
MATHJAX_PATH = "mathjax/tex-chtml.js"


def mathjax_files() -> Path:
    """The MathJax distribution inside the installed ``sphinx-mathjax-offline`` package."""
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or spec.origin is None:
        raise RuntimeError('the docs need the sphinx-mathjax-offline package: pip install ".[docs]"')
    return Path(spec.origin).parent / "static" / "mathjax"


def _copy(app: Any, exc: BaseException | None) -> None:
    if exc is None and app.builder.format == "html":
        copy_asset(str(mathjax_files()), str(Path(app.outdir) / "_static" / "mathjax"))


def setup(app: Any) -> dict:
    mathjax_files()  # fail at once, with the install command, when the files are missing
    app.config.mathjax_path = MATHJAX_PATH
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
