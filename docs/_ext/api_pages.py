"""The API reference, generated at each build from the ``__all__`` of stochdyn and its public modules.

Each public object gets one page (autosummary stub), at the first place it appears in
:data:`MODULES` order — so ``sd.EulerMaruyama`` is documented once as ``stochdyn.EulerMaruyama``
and listed (linked) on the integrators page too. New public names appear without editing any page.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

#: module, page title, one-line description (the order of the reference)
MODULES = [
    ("stochdyn", "Top level", "Simulate, sweep, save and load; the integrators by name."),
    ("stochdyn.landscapes", "Landscapes", "Potentials U(x) with NumPy-vectorised value and gradient; user landscapes."),
    ("stochdyn.integrators", "Integrators", "Langevin, SGD-family and evolution integrators, and their configurations."),
    ("stochdyn.problems", "Finite-sum problems", "Losses over data sets for the SGD family; data generators."),
    ("stochdyn.fitness", "Fitness", "Fitness maps W = f(U; s) and genotype landscapes."),
    ("stochdyn.stopping", "Stopping rules", "Rules that stop each replica when an event happens."),
    ("stochdyn.analysis", "Analysis", "Estimates with standard errors from a run's Dataset."),
    ("stochdyn.theory", "Theory", "Exact finite-step, finite-batch and finite-population results."),
    ("stochdyn.plot", "Plotting", "Paper-ready figures and styles."),
    ("stochdyn.io", "Input and output", "Dataset schema, netCDF/zarr files."),
    ("stochdyn.random", "Random streams", "Per-replica random streams and seeds."),
]


def _kind(obj) -> str:
    if inspect.isclass(obj):
        return "class"
    if callable(obj):
        return "function"
    return "data"


def write(out: Path, package) -> list[str]:
    """Write ``out/<module>.rst`` for every public module and ``out/index.rst``; return the documented names."""
    out.mkdir(exist_ok=True)
    seen: dict[int, str] = {}
    documented: list[str] = []
    pages = []
    for modname, title, blurb in MODULES:
        try:
            mod = importlib.import_module(modname)
        except ImportError:
            continue
        names = [n for n in getattr(mod, "__all__", []) if not inspect.ismodule(getattr(mod, n, None))]
        own, linked = [], []
        for n in names:
            obj = getattr(mod, n)
            key = id(obj)
            if _kind(obj) != "data" and key in seen:
                linked.append(seen[key])
            else:
                seen.setdefault(key, f"{modname}.{n}")
                own.append(n)
                documented.append(f"{modname}.{n}")
        lines = [title, "=" * len(title), "", f".. currentmodule:: {modname}", ""]
        doc = (inspect.getdoc(mod) or "").split("\n\n")[0] if modname != "stochdyn" else ""
        lines += [blurb if not doc else f"``{modname}``: {blurb}", ""]
        for kind, heading in (("class", "Classes"), ("function", "Functions"), ("data", "Constants and registries")):
            group = [n for n in own if _kind(getattr(mod, n)) == kind]
            if group:
                lines += [heading, "-" * len(heading), "", ".. autosummary::", "   :toctree: generated",
                          "   :nosignatures:", ""] + [f"   {n}" for n in group] + [""]
        if linked:
            lines += ["Also here", "---------", "", "Documented on another page, importable from this module too:", "",
                      ".. autosummary::", "   :nosignatures:", ""] + [f"   ~{n}" for n in linked] + [""]
        page = out / f"{modname}.rst"
        text = "\n".join(lines)
        if not page.exists() or page.read_text() != text:
            page.write_text(text)
        pages.append(modname)
    index = ["API reference", "=============", "",
             "Every public name of stochdyn, from its numpydoc docstring. ``import stochdyn as sd``; the",
             "integrators are also importable from the top level (``sd.EulerMaruyama``).", "",
             ".. toctree::", "   :maxdepth: 1", ""] + [f"   {m}" for m in pages] + [""]
    text = "\n".join(index)
    if not (out / "index.rst").exists() or (out / "index.rst").read_text() != text:
        (out / "index.rst").write_text(text)
    return documented


def data_docs(package) -> dict[str, list[str]]:
    """``{public name: lines}``: the ``#:`` doc-comment of each public data object (registries,
    signatures, palettes), read from the module that assigns it.

    Autodoc reads doc-comments only in the module a page names, where these objects are merely
    imported, and would otherwise show the docstring of their type ("dict() -> new empty dictionary").
    """
    import pkgutil

    from sphinx.pycode import ModuleAnalyzer

    public: dict[int, list[str]] = {}
    for modname, _, _ in MODULES:
        mod = importlib.import_module(modname)
        for n in getattr(mod, "__all__", []):
            obj = getattr(mod, n)
            if _kind(obj) == "data" and not inspect.ismodule(obj):
                public.setdefault(id(obj), []).append(f"{modname}.{n}")
    found: dict[str, list[str]] = {}
    names = [package.__name__] + [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
                                  if not m.name.endswith("__main__")]
    for name in names:
        try:
            mod = importlib.import_module(name)
            docs = ModuleAnalyzer.for_module(name).find_attr_docs()
        except Exception:  # a module without source, or one that needs an optional dependency
            continue
        for (namespace, attr), lines in docs.items():
            obj = vars(mod).get(attr, _MISSING)
            if namespace == "" and obj is not _MISSING and id(obj) in public:
                for full in public[id(obj)]:
                    found.setdefault(full, [line for line in lines if line.strip()] or list(lines))
    for modname, _, _ in MODULES:  # compiled functions held lazily: the docstring of their Python function
        mod = importlib.import_module(modname)
        for n in getattr(mod, "__all__", []):
            doc = inspect.getdoc(getattr(getattr(mod, n), "pyfunc", None))
            if f"{modname}.{n}" in public.get(id(getattr(mod, n)), []) and doc:
                found.setdefault(f"{modname}.{n}", doc.splitlines())
    return found


_MISSING = object()
