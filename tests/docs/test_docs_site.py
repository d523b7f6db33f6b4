"""The documentation site builds with no warning, and its pages, images and links are all there.

One build (``python -m sphinx -W -b html docs OUT``, as README says) runs every lab notebook from top
to bottom (myst-nb; a failing cell, including a failed check of an exercise against ``sd.theory``,
fails the build) and every gallery script (sphinx-gallery), so this test is also the test of the labs
and of the gallery. The checks that follow read the HTML it wrote. Skipped when the ``docs``
dependencies are not installed.
"""

import html.parser
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

for module in ("sphinx", "myst_nb", "sphinx_gallery", "numpydoc", "pydata_sphinx_theme", "nbclient", "ipykernel"):
    pytest.importorskip(module, reason='the docs tests need pip install ".[docs]"')

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "STOCHDYN_DOCS_EXECUTE": "force"}
    # -j auto: documents are read and written in parallel processes (the labs run while the API pages are
    # read); the output is the same as README's serial command
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-j", "auto", "-b", "html", "-q",
                           "-d", str(out / "doctrees"), str(DOCS), str(out / "html")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    return proc, out / "html"


def test_site_builds_without_warnings(site):
    proc, _ = site
    # Sphinx's own messages ("WARNING: ..."); a lab kernel's log lines ("[IPKernelApp] WARNING | ...") are not
    # Sphinx warnings and cannot fail the build (docs/conf.py gives the kernels encryption keys, which
    # silences the one ipykernel >= 7 prints)
    sphinx_messages = re.findall(r"^.*(?:WARNING|ERROR|CRITICAL): .*$", proc.stderr, re.M)
    assert proc.returncode == 0 and not sphinx_messages, proc.stderr[-6000:]
    import zmq

    if zmq.has("curve"):
        assert "without encryption" not in proc.stderr, "lab kernels ran over plain TCP (see docs/conf.py)"


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.images, self.assets = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])
        if tag == "script" and a.get("src"):
            self.assets.append(a["src"])
        if tag == "link" and a.get("rel") == "stylesheet" and a.get("href"):
            self.assets.append(a["href"])


def _parse(page: Path) -> _Links:
    p = _Links()
    p.feed(page.read_text())
    return p


def _local(page: Path, ref: str) -> Path | None:
    u = urlparse(ref)
    if u.scheme or u.netloc or not u.path:
        return None
    return (page.parent / unquote(u.path)).resolve()


def test_every_link_and_image_of_every_page_resolves(site):
    _, html_dir = site
    pages = sorted(html_dir.rglob("*.html"))
    assert len(pages) > 100
    broken = []
    for page in pages:
        p = _parse(page)
        for ref in p.links + p.images:
            target = _local(page, ref)
            if target is not None and not target.exists():
                broken.append(f"{page.relative_to(html_dir)} -> {ref}")
    assert not broken, "broken links or images:\n" + "\n".join(broken[:30])


def test_pages_load_no_script_or_stylesheet_from_the_network(site):
    """The site works offline (a lab in a classroom without network): MathJax ships with it
    (sphinx-mathjax-offline), so equations render instead of showing raw TeX; every script and
    stylesheet is a file of the site."""
    _, html_dir = site
    remote, missing = set(), set()
    for page in sorted(html_dir.rglob("*.html")):
        if page.relative_to(html_dir).parts[0] == "_static":
            continue  # the theme's Jinja templates, not pages
        for ref in _parse(page).assets:
            target = _local(page, ref)
            if target is None:
                remote.add(ref)
            elif not target.exists():
                missing.add(f"{page.relative_to(html_dir)} -> {ref}")
    assert not remote, f"scripts or stylesheets from the network: {sorted(remote)[:10]}"
    assert not missing, f"missing scripts or stylesheets: {sorted(missing)[:10]}"
    assert (html_dir / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert '_static/mathjax/tex-chtml.js' in (html_dir / "sgd-as-langevin.html").read_text()


def test_every_public_name_has_an_api_page(site):
    _, html_dir = site
    sys.path.insert(0, str(DOCS))
    try:
        import stochdyn
        from _ext import api_pages
    finally:
        sys.path.remove(str(DOCS))
    names = api_pages.write(DOCS / "api", stochdyn)
    missing = [n for n in names if not (html_dir / "api" / "generated" / f"{n}.html").exists()]
    assert not missing, f"public names without an API page: {missing}"
    assert {"stochdyn.simulate", "stochdyn.analysis.temperature", "stochdyn.theory.em_harmonic_variance",
            "stochdyn.plot.trajectory_fan"} <= set(names)
    # numpydoc sections rendered, and cross-links to the libraries users know (shipped inventories)
    assert "Parameters" in (html_dir / "api" / "generated" / "stochdyn.simulate.html").read_text()
    pages = [p.read_text() for p in (html_dir / "api" / "generated").glob("*.html")]
    for site_url in ("docs.xarray.dev", "numpy.org/doc", "docs.python.org"):
        assert sum(site_url in p for p in pages) >= 3, f"few or no links to {site_url}"


def test_labs_are_pages_with_their_figures_and_passing_checks(site):
    _, html_dir = site
    labs = sorted((DOCS / "labs").glob("*.ipynb"))
    assert len(labs) >= 3
    for lab in labs:
        page = html_dir / "labs" / f"{lab.stem}.html"
        text = page.read_text()
        assert "Learning goals" in text, lab.name
        assert len(_parse(page).images) >= 1, f"{lab.name}: no figure on its page"
        assert re.search(r"z = [+-]\d", text), f"{lab.name}: no check against theory in its output"
        assert "Traceback" not in text, f"{lab.name}: a cell failed"
    teaching = (DOCS / "teaching.md").read_text()
    assert all(f"labs/{lab.name}" in teaching for lab in labs), "docs/teaching.md must point to every lab"


def test_gallery_has_a_figure_for_every_script(site):
    _, html_dir = site
    scripts = sorted((DOCS / "gallery").glob("plot_*.py"))
    for script in scripts:
        page = html_dir / "auto_gallery" / f"{script.stem}.html"
        images = [src for src in _parse(page).images if "sphx_glr_" in src and "thumb" not in src]
        assert images, f"{script.name}: no figure on its gallery page"
    anim = _parse(html_dir / "auto_gallery" / "plot_animate_ensemble.html").images
    assert any(src.endswith(".gif") for src in anim)


def test_studies_gallery_and_their_notes_are_pages(site):
    _, html_dir = site
    index = html_dir / "studies" / "index.html"
    studies = sorted(p.parent.name for p in (ROOT / "analyses").glob("*/README.md"))
    links = _parse(index).links
    for name in studies:
        assert (html_dir / "studies" / "readme" / f"{name}.html").exists(), name
    assert any("readme/" in link for link in links)
    assert len([src for src in _parse(index).images if src.endswith(".png")]) >= 5
