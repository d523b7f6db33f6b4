"""Every Python example of README.md and the pages of docs/ runs, as a user would paste it.

The ```python blocks of a page run in order as one script in a fresh process (a reader follows a
page from the top; later blocks may use names defined by earlier ones), in an empty working
directory with Matplotlib's Agg backend. A block opts out only with a marker on the line just
before it that gives a reason, e.g. ``<!-- docs-test: skip: runs for hours (1e6 replicas) -->``;
the test checks every marker has one. Examples whose output a page quotes are checked by the
numbers in the page's own text, e.g. README's variance against its exact value.

The pages' scripts are independent processes, so they are started together, as many at a time as
there are cores (most of a script's time is single-threaded: imports, loading kernels, figures),
and each page's test waits for its own.
"""

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "docs" / "labs").glob("*.md"))
BLOCK = re.compile(r"(?P<before>^[^\n]*\n)?^```python\n(?P<code>.*?)^```", re.S | re.M)
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s*:\s*(?P<reason>\S.*?)\s*-->")


def blocks(page: Path) -> tuple[list[str], list[str]]:
    """(code blocks to run, reasons of the skipped ones) of a page, in order."""
    run, skipped = [], []
    for m in BLOCK.finditer(page.read_text()):
        marker = SKIP.search(m.group("before") or "")
        if marker:
            skipped.append(marker.group("reason"))
        else:
            run.append(m.group("code"))
    return run, skipped


def test_skip_markers_give_a_reason():
    for page in PAGES:
        for line in page.read_text().splitlines():
            if "docs-test:" in line:
                assert SKIP.search(line), f"{page.name}: a docs-test marker needs 'skip: <reason>': {line!r}"


RUN = [p for p in PAGES if blocks(p)[0]]


def _run_page(page: Path, folder: Path) -> subprocess.CompletedProcess:
    code, _ = blocks(page)
    folder.mkdir()
    script = folder / f"{page.stem}.py"
    script.write_text("\n\n".join(code))
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, str(script)], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def page_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pages")
    with ThreadPoolExecutor(max_workers=max(1, min(os.cpu_count() or 1, 4))) as pool:
        futures = {page: pool.submit(_run_page, page, root / page.stem) for page in RUN}
        yield futures


@pytest.mark.parametrize("page", RUN, ids=lambda p: p.name)
def test_python_examples_of_a_page_run_as_a_script(page, page_runs):
    proc = page_runs[page].result()
    assert proc.returncode == 0, f"the examples of {page.relative_to(ROOT)} failed:\n{proc.stderr[-4000:]}"
