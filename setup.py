"""Build step: ship the repository's model cards (models/) and studies (analyses/) inside the
package, as stochdyn/_data/models and stochdyn/_data/analyses, so that `stochdyn run double_well`
and `stochdyn reproduce` find them after `pip install`. The folders stay at the top of the
repository for readers; nothing is duplicated in git. An editable install reads them in place
(see stochdyn/_resources.py). All other metadata is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("models", "analyses")


def _shipped_files(folder: str) -> list[Path]:
    """Every file under a shipped folder except caches and hidden files."""
    base = ROOT / folder
    return sorted(p for p in base.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                  and not any(part.startswith(".") for part in p.relative_to(base).parts)
                  and p.suffix not in (".pyc", ".pyo"))


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for folder in SHIPPED:
            for src in _shipped_files(folder):
                dst = Path(self.build_lib, "stochdyn", "_data", src.relative_to(ROOT))
                self.mkpath(str(dst.parent))
                self.copy_file(str(src), str(dst), preserve_mode=False)


setup(cmdclass={"build_py": BuildPyWithData})
