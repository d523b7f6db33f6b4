"""Write the small intersphinx inventories shipped with the docs (the build needs no network).

    python docs/_intersphinx/make_inventories.py

Each ``<project>.inv`` lists the outside names stochdyn's pages and docstrings refer to, with the
page layout of that project's stable documentation (checked against the live sites). To link more
names, add them here and rerun; to use the full live inventories instead, build with
``STOCHDYN_DOCS_INTERSPHINX=online``.
"""

from __future__ import annotations

import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent

PY_BUILTIN = "library/functions.html#$"
PY_STD = "library/stdtypes.html#$"
INVENTORIES = {
    "python": [
        ("int", "py:class", PY_BUILTIN), ("float", "py:class", PY_BUILTIN), ("bool", "py:class", PY_BUILTIN),
        ("str", "py:class", PY_STD), ("dict", "py:class", PY_STD), ("list", "py:class", PY_STD),
        ("tuple", "py:class", PY_STD), ("callable", "py:function", PY_BUILTIN),
        ("None", "py:data", "library/constants.html#$"),
        ("pathlib.Path", "py:class", "library/pathlib.html#$"), ("os.PathLike", "py:class", "library/os.html#$"),
        ("collections.abc.Mapping", "py:class", "library/collections.abc.html#$"),
        ("collections.abc.Sequence", "py:class", "library/collections.abc.html#$"),
        ("collections.abc.Callable", "py:class", "library/collections.abc.html#$"),
        ("ValueError", "py:exception", "library/exceptions.html#$"),
        ("RuntimeWarning", "py:exception", "library/exceptions.html#$"),
        ("UserWarning", "py:exception", "library/exceptions.html#$"),
        ("True", "py:data", "library/constants.html#$"), ("False", "py:data", "library/constants.html#$"),
        ("contextlib.contextmanager", "py:function", "library/contextlib.html#$"),
        ("collections.namedtuple", "py:function", "library/collections.html#$"),
        ("sequence", "std:term", "glossary.html#term-sequence"), ("iterable", "std:term", "glossary.html#term-iterable"),
        ("generator", "std:term", "glossary.html#term-generator"),
        ("bltin-boolean-values", "std:label", "library/stdtypes.html#bltin-boolean-values", "Boolean Values"),
    ],
    "numpy": [
        ("numpy.ndarray", "py:class", "reference/generated/numpy.ndarray.html#$"),
        ("numpy.random.Generator", "py:class", "reference/random/generator.html#$"),
        ("numpy.random.default_rng", "py:function", "reference/random/generator.html#$"),
        ("numpy.random.SeedSequence", "py:class", "reference/random/bit_generators/generated/numpy.random.SeedSequence.html#$"),
        ("numpy.histogram", "py:function", "reference/generated/numpy.histogram.html#$"),
        ("numpy.save", "py:function", "reference/generated/numpy.save.html#$"),
        ("numpy.load", "py:function", "reference/generated/numpy.load.html#$"),
        ("numpy.random.RandomState", "py:class", "reference/random/legacy.html#$"),
        ("numpy.inf", "py:data", "reference/constants.html#$"), ("numpy.nan", "py:data", "reference/constants.html#$"),
        ("numpy", "py:module", "reference/index.html#module-numpy"),
        ("array_like", "std:term", "glossary.html#term-array_like"),
        ("arrays.scalars", "std:label", "reference/arrays.scalars.html#arrays-scalars", "Scalars"),
    ],
    "xarray": [
        ("xarray.Dataset", "py:class", "generated/xarray.Dataset.html#$"),
        ("xarray.DataArray", "py:class", "generated/xarray.DataArray.html#$"),
        ("xarray.open_dataset", "py:function", "generated/xarray.open_dataset.html#$"),
        ("xarray.open_zarr", "py:function", "generated/xarray.open_zarr.html#$"),
        ("xarray.concat", "py:function", "generated/xarray.concat.html#$"),
        ("xarray.Dataset.to_netcdf", "py:method", "generated/xarray.Dataset.to_netcdf.html#$"),
        ("xarray.Dataset.to_zarr", "py:method", "generated/xarray.Dataset.to_zarr.html#$"),
    ],
    "scipy": [
        ("scipy.integrate.quad", "py:function", "reference/generated/scipy.integrate.quad.html#$"),
        ("scipy.stats.kstest", "py:function", "reference/generated/scipy.stats.kstest.html#$"),
        ("scipy.stats.chi2", "py:data", "reference/generated/scipy.stats.chi2.html#$"),
        ("scipy.stats.ncx2", "py:data", "reference/generated/scipy.stats.ncx2.html#$"),
        ("scipy.special.iv", "py:data", "reference/generated/scipy.special.iv.html#$"),
    ],
    "matplotlib": [
        ("matplotlib.axes.Axes", "py:class", "api/_as_gen/matplotlib.axes.Axes.html#$"),
        ("matplotlib.figure.Figure", "py:class", "api/_as_gen/matplotlib.figure.Figure.html#$"),
        ("matplotlib.pyplot.subplots", "py:function", "api/_as_gen/matplotlib.pyplot.subplots.html#$"),
        ("matplotlib.animation.FuncAnimation", "py:class", "api/_as_gen/matplotlib.animation.FuncAnimation.html#$"),
        ("matplotlib.style.use", "py:function", "api/style_api.html#$"),
        ("matplotlib.style.context", "py:function", "api/style_api.html#$"),
    ],
}


def write(project: str, entries: list[tuple[str, ...]]) -> Path:
    header = (f"# Sphinx inventory version 2\n# Project: {project}\n# Version: stable\n"
              "# The remainder of this file is compressed using zlib.\n").encode()
    body = "".join(f"{e[0]} {e[1]} {-1 if e[1].startswith('std:') else 1} {e[2]} {e[3] if len(e) > 3 else '-'}\n"
                   for e in sorted(entries)).encode()
    path = HERE / f"{project}.inv"
    path.write_bytes(header + zlib.compress(body, 9))
    return path


if __name__ == "__main__":
    for project, entries in INVENTORIES.items():
        print("wrote", write(project, entries))
