"""Build the figure gallery: run every docs/gallery/plot_*.py headless and write its figures.

    python docs/build.py                      # all gallery scripts -> docs/gallery/_build/
    python docs/build.py trajectory_fan       # only plot_trajectory_fan.py
    python docs/build.py --out /tmp/gallery

Each script runs in this process (compiled kernels are shared) with Matplotlib's Agg backend and
default settings restored first; every figure it leaves open is saved as ``<script>.png`` (``_2``,
``_3``, ... for more), and ``index.md`` lists each example: its title, what it shows, the image and
the code. Scripts may write other files (animations) into ``$STOCHDYN_GALLERY_OUT``. The exit status
is 1 if any script fails, so the build can gate CI.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
GALLERY = HERE / "gallery"


def _docstring(path: Path) -> tuple[str, str]:
    import ast

    doc = ast.get_docstring(ast.parse(path.read_text())) or path.stem
    title, _, body = doc.partition("\n")
    return title.strip(), body.strip()


def _code(path: Path) -> str:
    import ast

    src = path.read_text()
    tree = ast.parse(src)
    first = tree.body[0]
    if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
        src = "\n".join(src.splitlines()[first.end_lineno:])
    return src.strip()


def run_script(path: Path, out: Path, dpi: int = 200) -> list[Path]:
    """Run one gallery script and save the figures it leaves open; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.close("all")
    matplotlib.rcdefaults()
    os.environ["STOCHDYN_GALLERY_OUT"] = str(out)
    runpy.run_path(str(path), run_name="__main__")
    written = []
    for k, num in enumerate(plt.get_fignums()):
        name = f"{path.stem}.png" if k == 0 else f"{path.stem}_{k + 1}.png"
        plt.figure(num).savefig(out / name, dpi=dpi)
        written.append(out / name)
    written += sorted(p for p in out.glob(f"{path.stem}*") if p.suffix in (".gif", ".mp4") and p not in written)
    plt.close("all")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="gallery scripts to run (without plot_ and .py); default all")
    parser.add_argument("--out", type=Path, default=GALLERY / "_build", help="output directory")
    parser.add_argument("--dpi", type=int, default=200)
    args = parser.parse_args(argv)
    scripts = sorted(GALLERY.glob("plot_*.py"))
    if args.names:
        wanted = {n if n.startswith("plot_") else f"plot_{n}" for n in args.names}
        unknown = wanted - {p.stem for p in scripts}
        if unknown:
            parser.error(f"unknown gallery scripts: {', '.join(sorted(unknown))}")
        scripts = [p for p in scripts if p.stem in wanted]
    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    index = ["# Gallery", "", "One example per `stochdyn.plot` function, rendered by `python docs/build.py`.", ""]
    for path in scripts:
        t0 = time.perf_counter()
        try:
            files = run_script(path, args.out, args.dpi)
        except Exception:
            failed.append(path.name)
            print(f"FAILED {path.name}\n{traceback.format_exc()}", file=sys.stderr)
            continue
        print(f"{path.name}: {len(files)} file(s) in {time.perf_counter() - t0:.1f} s")
        title, body = _docstring(path)
        index += [f"## {title}", "", body, ""]
        index += [f"![{path.stem}]({f.name})" for f in files]
        index += ["", "```python", _code(path), "```", ""]
    (args.out / "index.md").write_text("\n".join(index))
    if failed:
        print(f"{len(failed)} gallery script(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
