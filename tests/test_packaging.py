"""stochdyn as a user gets it: built with ``python -m build``, installed from the wheel into a fresh
virtual environment, and used from an empty folder, never from the source tree.

The fresh environment holds the wheel (installed by pip, with its console script) and, instead of a
second download and unpacking of ~500 MB of NumPy/SciPy/Numba, links to exactly the distributions
that ``stochdyn[test]`` declares, with their own dependencies, taken from the environment running
the tests. So a dependency that stochdyn uses without declaring it is missing there and a test
fails, as it would after ``pip install stochdyn``; a file the wheel or the sdist forgets fails too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import venv
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not (ROOT / "pyproject.toml").is_file(),
                                reason="builds stochdyn from its source tree (pyproject.toml not found)")

#: a quick study that compiles no integrator kernel (a few seconds from a cold cache)
QUICK_STUDY = "meta_gradient_bias"


def _run(args: list, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "NUMBA_CACHE_DIR")}
    env["PYTHONNOUSERSITE"] = "1"
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, **kwargs)


def _source_files(folder: str) -> set[str]:
    """Files of the repository under ``folder`` (relative to the root): git's list in a clone, else
    every file on disk (an unpacked sdist)."""
    if (ROOT / ".git").exists():
        out = _run(["git", "-C", ROOT, "ls-files", "--cached", "--others", "--exclude-standard", "--", folder])
        if out.returncode == 0:
            return {line for line in out.stdout.splitlines() if (ROOT / line).is_file()}
    return {str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".nbi", ".nbc")}


# -- building ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    pytest.importorskip("build", reason="the 'test' extra installs build")
    out = tmp_path_factory.mktemp("dist")
    res = _run([sys.executable, "-m", "build", "--outdir", out, ROOT])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (sdist,), (wheel,) = list(out.glob("*.tar.gz")), list(out.glob("*.whl"))
    return sdist, wheel


def _requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(z.read(name).decode())
    return meta.get_all("Requires-Dist") or []


def _declared_closure(requires: list[str], extras: set[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions that ``stochdyn[extras]`` needs: its requirements (with the
    extras' self-references such as ``stochdyn[io]`` expanded) and, recursively, theirs."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    def wanted(reqs, extras):
        env_extras = sorted(extras) or [""]
        return [r for r in map(Requirement, reqs)
                if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in env_extras)]

    extras = set(extras)
    while True:  # expand "stochdyn[io,parallel]" inside the extras
        more = {e for r in wanted(requires, extras) if canonicalize_name(r.name) == "stochdyn" for e in r.extras}
        if more <= extras:
            break
        extras |= more
    todo = [r for r in wanted(requires, extras) if canonicalize_name(r.name) != "stochdyn"]
    found: dict[str, metadata.Distribution] = {}
    seen = set()
    while todo:
        r = todo.pop()
        key = (canonicalize_name(r.name), frozenset(r.extras))
        if key in seen:
            continue
        seen.add(key)
        dist = metadata.distribution(r.name)  # PackageNotFoundError: the test environment lacks it
        found[key[0]] = dist
        todo += wanted(dist.requires or [], set(r.extras))
    return found


def _link_distributions(dists: dict[str, metadata.Distribution], site: Path) -> None:
    """Symlink every top-level file and folder of these distributions (packages, modules, bundled
    libraries, dist-info) into ``site``."""
    site.mkdir()
    for dist in dists.values():
        assert dist.files is not None, f"{dist.metadata['Name']} has no RECORD"
        for top in {f.parts[0] for f in dist.files if f.parts and f.parts[0] not in ("..", "__pycache__")}:
            src = Path(dist.locate_file(top))
            if src.exists() and not (site / top).exists():
                (site / top).symlink_to(src)


@pytest.fixture(scope="module")
def installed(dists, tmp_path_factory):
    """A fresh venv with the wheel installed by pip and the declared dependencies of ``stochdyn[test]``."""
    _, wheel = dists
    root = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(root / "env")
    bindir = root / "env" / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    _link_distributions(_declared_closure(_requirements(wheel), {"test"}), root / "deps")
    (purelib / "stochdyn_test_dependencies.pth").write_text(str(root / "deps") + "\n")
    res = _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
                "--no-compile", "--quiet", wheel])
    assert res.returncode == 0, res.stderr
    where = _run([python, "-c", "import stochdyn; print(stochdyn.__file__)"], cwd=root)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(purelib), where.stdout  # the wheel, not the source tree
    return python, bindir


# -- what the distributions hold ---------------------------------------------------------------------
def test_wheel_metadata_and_package_data(dists):
    _, wheel = dists
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = Parser().parsestr(z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode())
    # PEP 639 licence metadata, the licence text itself, and the typing marker
    assert meta["License-Expression"] == "BSD-3-Clause" and meta["License"] is None
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "stochdyn/py.typed" in names
    classifiers = meta.get_all("Classifier")
    assert "Typing :: Typed" in classifiers and any(c.startswith("Development Status") for c in classifiers)
    assert not any(c.startswith("License ::") for c in classifiers)  # PEP 639: the expression replaces them
    assert meta["Keywords"]
    # every model card and every file of every study, byte for byte; no kernel caches
    for folder in ("models", "analyses"):
        with zipfile.ZipFile(wheel) as z:
            for rel in _source_files(folder):
                assert z.read(f"stochdyn/_data/{rel}") == (ROOT / rel).read_bytes(), rel
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".nbi", ".nbc"))]


def test_sdist_holds_tests_data_docs_and_project_files(dists):
    sdist, _ = dists
    with tarfile.open(sdist) as t:
        prefix = t.getnames()[0].split("/")[0]
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    for folder in ("tests", "models", "analyses", "docs", "benchmarks", "stochdyn"):
        missing = {f for f in _source_files(folder) if not f.startswith("docs/_build/")} - names
        assert not missing, f"{prefix}.tar.gz lacks {sorted(missing)[:5]}"
    assert {"LICENSE", "CHANGELOG.md", "CITATION.cff", "README.md", "pyproject.toml", "setup.py"} <= names
    # README's relative links point at files that are there in a clone and in the sdist
    for target in _relative_links(ROOT / "README.md"):
        assert target in names, f"README links to {target}, which is not in the sdist"


def _relative_links(md: Path) -> list[str]:
    targets = re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", md.read_text())
    return [t for t in targets if not re.match(r"[a-z]+://|mailto:", t)]


def test_readme_links_resolve_and_citation_matches_the_version():
    import stochdyn

    for target in _relative_links(ROOT / "README.md"):
        assert (ROOT / target).exists(), target
    citation = (ROOT / "CITATION.cff").read_text()
    assert re.search(r'^version: "?([^"\n]+)"?$', citation, re.M).group(1) == stochdyn.__version__
    assert "license: BSD-3-Clause" in citation and "## Unreleased" in (ROOT / "CHANGELOG.md").read_text()


# -- using the installed package ---------------------------------------------------------------------
def test_installed_wheel_runs_a_model_card_and_a_study_by_name(installed, tmp_path):
    python, bindir = installed
    res = _run([bindir / "stochdyn", "run", "double_well", "-o", "x.nc", "--no-progress"], cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "var_x1" in res.stdout and (tmp_path / "x.nc").is_file()
    import xarray as xr

    with xr.open_dataset(tmp_path / "x.nc") as ds:
        assert ds.sizes["replica"] == 10_000 and json.loads(ds.attrs["integrator"])["type"] == "EulerMaruyama"

    res = _run([bindir / "stochdyn", "run", "no_such_model", "-o", "y.nc"], cwd=tmp_path)
    assert res.returncode == 2 and "double_well" in res.stderr  # the message lists the model cards

    res = _run([bindir / "stochdyn", "reproduce", QUICK_STUDY, "--quick", "--out", "rep"], cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"[{QUICK_STUDY}]" in res.stdout  # progress messages through the stochdyn logger
    results = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert results["errors"] == {} and results["records"]
    assert all(r["passed"] for r in results["records"])


def test_tests_collect_from_the_sdist_against_the_installed_wheel(dists, installed, tmp_path):
    sdist, _ = dists
    python, _ = installed
    with tarfile.open(sdist) as t:
        t.extractall(tmp_path, filter="data")
    (src,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    res = _run([python, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", src / "tests"], cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    collected = {line.split("::")[0] for line in res.stdout.splitlines() if "::" in line}
    expected = {f for f in _source_files("tests") if re.search(r"(^|/)test_[^/]*\.py$", f)}
    assert collected == expected
