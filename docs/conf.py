"""Sphinx configuration of the stochdyn documentation site.

    pip install ".[docs]" && python -m sphinx -W -b html docs docs/_build/html

Sources: the Markdown pages of docs/ (MyST), the labs in docs/labs/ (notebooks, executed by myst-nb
and cached), the figure gallery from the scripts in docs/gallery/ (sphinx-gallery, executed), the
studies gallery docs/studies/index.md (built by docs/build_studies.py; each study's README becomes
a page), and an API reference generated here from the ``__all__`` of every public module
(autosummary + numpydoc). The build needs no network: intersphinx uses the inventories shipped in
docs/_intersphinx/ (set ``STOCHDYN_DOCS_INTERSPHINX=online`` to fetch the live ones instead).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS))  # _ext/

import stochdyn  # noqa: E402

from _ext import api_pages, gallery_scrapers, studies_pages  # noqa: E402,F401  (sets $STOCHDYN_GALLERY_OUT)

project = "stochdyn"
author = "stochdyn developers"
copyright = "stochdyn developers"
release = stochdyn.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "_ext.mathjax_offline",  # MathJax ships with the site: equations render on a page opened offline
    "numpydoc",
    "myst_nb",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = [
    "_build", "**.ipynb_checkpoints", "gallery", "examples", "images",
    "auto_gallery/*.ipynb", "auto_gallery/*.py", "auto_gallery/*.zip", "auto_gallery/*.json",
]
templates_path = ["_templates"]
html_static_path = ["_static"]
html_css_files = ["stochdyn.css"]

# -- pages in Markdown (MyST) and notebooks (myst-nb) -------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
# the labs are executed once per change and cached (a cell that raises fails the build); nothing else is
# executed by myst-nb. STOCHDYN_DOCS_EXECUTE=force (tests/docs/test_docs_site.py) runs every lab and every
# gallery script again, whatever the caches hold.
nb_execution_mode = os.environ.get("STOCHDYN_DOCS_EXECUTE", "cache")
os.environ.pop("MPLBACKEND", None)  # the lab kernels draw inline (their figures are the pages' images)
nb_execution_cache_path = str(DOCS / "_build" / ".jupyter_cache")
nb_execution_excludepatterns = ["auto_gallery/*"]
nb_execution_timeout = 300
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
try:
    # the lab kernels get CurveZMQ keys from their manager (ipykernel's kernelspec declares support): no
    # plain-text TCP, and no "[IPKernelApp] WARNING | Kernel is running over TCP without encryption" lines
    # in the build log. myst-nb has no option for its kernel manager, so the class default is set; where
    # libzmq lacks Curve the lines stay, and they cannot fail the build (they are not Sphinx warnings).
    import zmq
    from jupyter_client.manager import KernelManager

    if zmq.has("curve") and hasattr(KernelManager, "transport_encryption"):
        KernelManager.transport_encryption.default_value = "auto"
except ImportError:  # no notebook execution without the docs extra
    pass

# -- API reference ----------------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": False}
autodoc_typehints = "none"  # numpydoc docstrings carry the types; signatures stay readable
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = True  # parameter types link to their pages (only the aliased names below)
numpydoc_xref_ignore = "all"
numpydoc_xref_aliases = {
    **{t: t for t in ("int", "float", "bool", "str", "dict", "list", "tuple", "callable", "None")},
    "path": "os.PathLike", "path-like": "os.PathLike", "mapping": "collections.abc.Mapping",
    "ndarray": "numpy.ndarray", "array": "numpy.ndarray", "Generator": "numpy.random.Generator",
    "SeedSequence": "numpy.random.SeedSequence",
    "Dataset": "xarray.Dataset", "DataArray": "xarray.DataArray",
    "xarray.Dataset": "xarray.Dataset", "xarray.DataArray": "xarray.DataArray",
    "Axes": "matplotlib.axes.Axes", "Figure": "matplotlib.figure.Figure",
    "Landscape": "stochdyn.landscapes.Landscape", "Problem": "stochdyn.problems.Problem",
    "Integrator": "stochdyn.integrators.Integrator", "FitnessMap": "stochdyn.fitness.FitnessMap",
}
numpydoc_validation_checks: set[str] = set()

# -- figure gallery (sphinx-gallery) ------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "gallery",
    "gallery_dirs": "auto_gallery",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "reset_modules": ("_ext.gallery_scrapers.reset_matplotlib",),
    "image_scrapers": ("matplotlib", "_ext.gallery_scrapers.animation_scraper"),
    "abort_on_example_error": True,
    "download_all_examples": False,
    "show_memory": False,
    "show_signature": False,
    "remove_config_comments": True,
    "min_reported_time": 10**9,
    "write_computation_times": False,
    "backreferences_dir": None,
    "matplotlib_animations": False,
    "image_srcset": [],
    "thumbnail_size": (400, 280),
    "run_stale_examples": nb_execution_mode == "force",
}

# -- cross-links to NumPy, SciPy, xarray, Matplotlib ----------------------------------------------------
_INTERSPHINX = {
    "python": "https://docs.python.org/3/",
    "numpy": "https://numpy.org/doc/stable/",
    "scipy": "https://docs.scipy.org/doc/scipy/",
    "xarray": "https://docs.xarray.dev/en/stable/",
    "matplotlib": "https://matplotlib.org/stable/",
}
_ONLINE = os.environ.get("STOCHDYN_DOCS_INTERSPHINX") == "online"
intersphinx_mapping = {
    name: (url, None if _ONLINE else str(DOCS / "_intersphinx" / f"{name}.inv"))
    for name, url in _INTERSPHINX.items()
    if _ONLINE or (DOCS / "_intersphinx" / f"{name}.inv").is_file()
}

# -- HTML ---------------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"stochdyn {release}"
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    "collapse_navigation": True,
    "header_links_before_dropdown": 6,
}
# no left sidebar on pages without sub-pages (it would be an empty "Section Navigation")
html_sidebars = {page: [] for page in ("index", "getting-started", "sgd-as-langevin", "evolution", "analysis", "rare-events", "scale",
                                       "teaching", "design", "studies/index")}
html_show_sourcelink = False
html_last_updated_fmt = None


def setup(app):
    api_pages.write(DOCS / "api", stochdyn)
    docs = api_pages.data_docs(stochdyn)

    def data_doc(app, what, name, obj, options, lines):
        if what == "data" and name in docs:
            lines[:] = docs[name] + [""]

    app.connect("autodoc-process-docstring", data_doc)
    app.set_html_assets_policy("always")  # MathJax on every page: autosummary tables carry math too
    studies_pages.write(DOCS / "studies", ROOT / "analyses")
    app.connect("source-read", studies_pages.link_readmes)
    return {"parallel_read_safe": True}


