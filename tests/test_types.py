"""Static types: mypy checks the whole package (issue 16, item 10).

The package ships ``py.typed``, so users' type checkers read its annotations; this keeps them true.
The check runs on the source tree (``python -m mypy --ignore-missing-imports -p stochdyn``, settings
in ``[tool.mypy]`` of pyproject.toml). It fails on any error mypy reports, so it fails as soon as an
annotation and the code disagree. Where a third-party stub is wrong or incomplete (e.g. Matplotlib's
writers' ``fps``, Numba's run-time config) the code carries ``# type: ignore[code]`` naming the error
code, never a bare ignore; behaviour fixed on the way to zero errors is tested in
``tests/test_mypy_findings.py``. mypy keeps its cache in ``.mypy_cache`` at the repository root:
a first run reads the package and the stubs of NumPy, xarray, Numba, ... (about 12 s of CPU, 20-40 s
on a busy 2-core machine), later runs only what changed (about 1 s).
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_reports_no_errors():
    pytest.importorskip("mypy", reason="the 'test' extra installs mypy")
    if not (ROOT / "stochdyn" / "__init__.py").is_file():
        pytest.skip("needs the source tree (tests run from a checkout or an sdist)")
    proc = subprocess.run([sys.executable, "-m", "mypy", "--ignore-missing-imports", "-p", "stochdyn"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"mypy found type errors:\n{proc.stdout[-8000:]}{proc.stderr[-2000:]}"
