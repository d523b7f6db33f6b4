"""The ``stochdyn`` command: ``run`` a spec, ``sweep`` a grid, ``reproduce`` the studies, ``verify`` an
output, print ``info``.

Every problem a user can cause — a bad spec, a bad argument, an output that cannot be written, a
damaged store, a full disk, an unreachable scheduler — ends with a one-line message on stderr and
exit code 2, checked before any work wherever it can be. Outputs appear atomically, are never
replaced without ``--overwrite``, and an interrupted ``.zarr`` run can be continued with ``--resume``.
Output piped into a command that stops reading (``| head -1``) does not stop the run.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["main", "build_parser"]

EXAMPLES = {
    "stochdyn": """examples:
  stochdyn run models/double_well.toml -o double_well.nc      run a model card, write netCDF
  stochdyn run models/double_well.toml -o dw.zarr             stream to a zarr store with checkpoints
  stochdyn run models/double_well.toml -o dw.zarr --resume    continue it after an interruption
  stochdyn sweep study.toml --out study-store/ --workers 2    one ensemble per grid point
  stochdyn reproduce --quick --out results/                   every shipped study, small
  stochdyn verify dw.zarr                                     check every checksum of an output
  stochdyn info                                               versions, threads, kernel cache""",
    "run": """examples:
  stochdyn run models/double_well.toml -o double_well.nc
  stochdyn run models/double_well.toml -o dw.zarr              (streams, with a checkpoint per chunk)
  stochdyn run models/double_well.toml -o dw.zarr --resume     (continue, bit-identical)
  stochdyn run models/harmonic.toml -o h.nc --overwrite        (replace an existing output)

An existing output is never replaced unless --overwrite is given. A symbolic link given as -o is
kept: its target is written. Exit status: 0 done, 2 a problem reported on one line, 130 interrupted.""",
    "sweep": """examples:
  stochdyn sweep study.toml --out study-store/ --workers 2
  stochdyn sweep study.toml --out study-store/ --resume        (finished points are kept)
  stochdyn sweep study.toml --out study-store/ --scheduler tcp://10.0.0.5:8786""",
    "reproduce": """examples:
  stochdyn reproduce --quick --out results/
  stochdyn reproduce double_well_kramers --out results/ --studies path/to/analyses

Each study is the file STUDIES/NAME/study.py, imported and run as Python code: run only studies
you trust. STUDIES defaults to the studies shipped with stochdyn.""",
    "verify": """examples:
  stochdyn verify dw.zarr          (every chunk's CRC-32C, metadata SHA-256, the checkpoint)
  stochdyn verify dw.zarr --quick  (presence and size of every chunk only)
  stochdyn verify double_well.nc   (every variable read: HDF5 checks its Fletcher-32)
  stochdyn verify study-store/     (every point of a sweep)

Exit status: 0 intact, 1 damaged (each damaged array and chunk listed), 2 cannot be checked.""",
}


def _say(text: str) -> None:
    """Print to stdout; if the reader has gone (``| head -1``), keep working and print nothing more."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # stdout without a file descriptor (captured)
            pass


class _Interrupted(Exception):
    def __init__(self, message: str):
        super().__init__(message)


def _cmd_run(args: argparse.Namespace) -> int:
    from ._validation import ValidationError
    from .io.files import NETCDF_SUFFIXES, _write_netcdf, _encodable
    from .io.output import check_free_space, check_output, fmt_bytes, temp_path
    from ._resources import find_spec_file
    from .spec import load_spec, run_spec, summarize

    out = Path(args.output)
    suffix = out.suffix.lower()
    if suffix not in NETCDF_SUFFIXES + (".zarr",):
        raise ValidationError(f"cannot tell the format of -o {args.output!r} from its extension: "
                              "name it .nc (netCDF) or .zarr (zarr store)")
    is_store = suffix == ".zarr"
    if args.resume and not is_store:
        raise ValidationError("--resume continues a run streamed to a zarr store: use -o OUT.zarr")
    if args.resume and args.overwrite:
        raise ValidationError("give --resume (continue the run in the store) or --overwrite (start again), not both")
    hint = ("give --resume to continue the run in it, or --overwrite to start again" if is_store
            else "give --overwrite to replace it")
    target = check_output(out, store=is_store, overwrite=args.overwrite, resume=args.resume, exists_hint=hint)
    spec = load_spec(find_spec_file(args.spec))  # a path, or the name of a shipped model card
    if spec.sweep is not None:
        raise ValidationError(f"{spec.source} has a [sweep] table: run it with  stochdyn sweep {spec.source} --out STORE")
    if not is_store:
        from .ensemble.store import record_bytes

        R, n = int(spec.run["n_replicas"]), spec.run["n_steps"] // spec.run.get("record_every", 1) + 1
        need = record_bytes(spec.integrator.variables(spec.target), R) * n + 16 * R
        check_free_space(target, need, f"The output -o {args.output!r}")
    old = None
    if is_store and args.overwrite and target.exists():
        if not (target / "zarr.json").is_file():
            raise ValidationError(f"-o {args.output!r} is a folder that is not a zarr store; not removed by --overwrite")
        old = temp_path(target, ".old")  # set aside: removed once the new store exists, put back if it never does
        os.rename(target, old)
    progress = False if args.no_progress else None
    if args.workers is not None and args.scheduler is not None:
        raise ValidationError("give --workers or --scheduler, not both")
    shards = {"workers": "serial" if args.workers == 0 else args.workers, "scheduler": args.scheduler}
    from .spec import _relative  # paths in the attributes are relative (or bare names), never the user's absolute path

    history = "stochdyn " + shlex.join(_relative(a) if a in (args.spec, args.output) else a for a in args.argv)
    _say(f"running {spec.name}: {spec.integrator!r} on {spec.target!r}")
    try:
        if is_store:  # stream into the store, with a checkpoint after every chunk
            ds = run_spec(spec, progress=progress, store=target, resume=args.resume, history=history, **shards)
        else:
            ds = run_spec(spec, progress=progress, history=history, **shards)
    except BaseException as exc:
        if old is not None:
            if target.exists():
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(old, target)
        if isinstance(exc, KeyboardInterrupt):
            raise _Interrupted(_interrupted_note(target, is_store, args)) from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    if not is_store:
        _write_netcdf(_encodable(ds), target, args.overwrite)
    _say(summarize(ds, spec.expected, spec.compare))
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file()) if is_store else target.stat().st_size
    _say(f"wrote {out} ({fmt_bytes(size)})")
    return 0


def _interrupted_note(target: Path, is_store: bool, args: argparse.Namespace) -> str:
    if not is_store:
        return "interrupted; nothing was written."
    from .ensemble.store import DamagedStoreError, read_checkpoint

    try:
        ck = read_checkpoint(target) if target.exists() else None
    except DamagedStoreError:
        ck = None
    if ck is None:
        return "interrupted before the store was created; nothing was written."
    return (f"interrupted; the store {str(args.output)!r} keeps {ck['records_complete']} complete records (up to step "
            f"{ck['step']}): continue with  stochdyn run {args.spec} -o {args.output} --resume")


def _cmd_sweep(args: argparse.Namespace) -> int:
    import json
    import time

    from ._validation import ValidationError
    from .ensemble.sweeps import sweep
    from .io.output import check_output
    from .spec import load_spec

    if args.workers is not None and args.scheduler is not None:
        raise ValidationError("give --workers or --scheduler, not both")
    if args.workers is not None and args.workers < 0:
        raise ValidationError(f"--workers must be >= 0 (0: serial, in this process); got {args.workers}")
    check_output(args.out, store=True, resume=args.resume,
                 exists_hint="give --resume to continue the sweep in it, or choose another --out")
    spec = load_spec(args.spec)
    if spec.sweep is None:
        raise ValidationError(f"{spec.source} has no [sweep] table: add one, or use  stochdyn run")
    run = dict(spec.run)
    run.pop("progress", None)
    run.pop("chunk_steps", None)
    seed = run.pop("seed", None)
    x0 = run.pop("x0", None)
    workers = "serial" if args.workers == 0 else args.workers
    n_points = 1
    for v in spec.sweep.values():
        n_points *= len(v)
    _say(f"sweeping {spec.name}: {n_points} points of {spec.integrator!r} on {spec.target!r}")
    t0 = time.perf_counter()
    try:
        ds = sweep(spec.integrator, spec.target, x0, grid=spec.sweep, rng=seed, workers=workers,
                   scheduler=args.scheduler, store=args.out, resume=args.resume, until=spec.until, **run)
    except KeyboardInterrupt:
        raise _Interrupted(f"interrupted; finished points are kept in {args.out!r}: continue with  stochdyn sweep "
                           f"{args.spec} --out {args.out} --resume") from None
    sweep_info = json.loads(ds.attrs["sweep"])
    dims = ", ".join(f"{d} ({len(c)})" for d, c in zip(sweep_info["dims"], sweep_info["coords"]))
    _say(f"done in {time.perf_counter() - t0:.1f} s: dimensions {dims}; {int(ds['diverged'].sum())} diverged replicas")
    _say(f"wrote {args.out}  (open with sd.open_sweep)")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .studies import reproduce

    from ._resources import studies_folder

    folder = (Path(args.studies) if args.studies is not None else studies_folder()).resolve()
    _say(f"running the study.py files in {folder} (Python code: run only studies you trust)")
    results = reproduce(args.names or None, out=args.out, quick=args.quick, studies_dir=folder)
    return 1 if results["errors"] else 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from ._validation import ValidationError
    from .io.files import verify

    path = Path(args.path)
    try:
        damage = verify(path, full=not args.quick)
    except ValidationError as exc:
        raise ValidationError(f"{args.path}: {exc}") from None
    if damage:
        _say(f"{args.path}: DAMAGED ({len(damage)} problem{'s' if len(damage) > 1 else ''})")
        for d in damage:
            _say(f"  {d}")
        return 1
    _say(f"{args.path}: intact ({'sizes and metadata' if args.quick else 'every checksum'} verified)")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    import platform

    import numba
    import numpy as np
    import scipy
    import xarray as xr

    from . import __version__
    from .integrators.base import INTEGRATORS
    from .landscapes.base import LANDSCAPES

    cache = os.environ.get("NUMBA_CACHE_DIR") or str(Path(__file__).parent / "**" / "__pycache__")
    rows = [
        ("stochdyn", __version__),
        ("python", platform.python_version()),
        ("numpy", np.__version__),
        ("numba", numba.__version__),
        ("scipy", scipy.__version__),
        ("xarray", xr.__version__),
        ("numba threads", f"{numba.get_num_threads()} (NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'unset')}, cores {os.cpu_count()})"),
        # numba.config sets its options from the environment at run time (globals().update), so its
        # inline types do not show them
        ("numba threading layer", str(numba.config.THREADING_LAYER)),  # type: ignore[attr-defined]
        ("kernel cache", cache),
        ("integrators", ", ".join(sorted(INTEGRATORS))),
        ("landscapes", ", ".join(sorted(LANDSCAPES))),
    ]
    for opt in ("netCDF4", "zarr", "dask", "distributed"):
        try:
            mod = __import__(opt)
            rows.append((opt, getattr(mod, "__version__", "installed")))
        except ImportError:
            rows.append((opt, "not installed (pip install 'stochdyn[io,parallel]')"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        _say(f"{k:<{width}}  {v}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="stochdyn", description="Stochastic dynamics on landscapes.",
                                     epilog=EXAMPLES["stochdyn"], formatter_class=fmt)
    parser.add_argument("--version", action="version", version=f"stochdyn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run one study spec (TOML) and write its Dataset", epilog=EXAMPLES["run"],
                       formatter_class=fmt, description="Run one study spec (TOML) and write its Dataset.")
    p.add_argument("spec", help="spec file (e.g. models/double_well.toml) or the name of a shipped model card (e.g. double_well)")
    p.add_argument("-o", "--output", required=True, help="output file: .nc (netCDF) or .zarr (store, with checkpoints)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output (default: refuse)")
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in the zarr store given by -o (bit-identical to an uninterrupted run)")
    p.add_argument("--workers", type=int, default=None,
                   help="split the replicas into shards on this many local Dask worker processes (0: in this process)")
    p.add_argument("--scheduler", default=None, help="run the shards on a running Dask scheduler at this address")
    p.set_defaults(handler=_cmd_run)
    p = sub.add_parser("sweep", help="run a spec with a [sweep] table: one ensemble per grid point",
                       epilog=EXAMPLES["sweep"], formatter_class=fmt,
                       description="Run a spec with a [sweep] table: one ensemble per grid point, each in its own store.")
    p.add_argument("spec", help="spec file with a [sweep] table")
    p.add_argument("--out", required=True, help="directory for the sweep store (one zarr store per point)")
    p.add_argument("--workers", type=int, default=None, help="local Dask worker processes (0: serial, in this process)")
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
    p.add_argument("--resume", action="store_true", help="skip finished points and resume interrupted ones")
    p.set_defaults(handler=_cmd_sweep)
    p = sub.add_parser("reproduce", help="run the shipped studies (or --studies DIR): figures, report.md and results.json",
                       epilog=EXAMPLES["reproduce"], formatter_class=fmt,
                       description="Run the studies (STUDIES/*/study.py, imported as Python code) and write figures, "
                                   "report.md and results.json.")
    p.add_argument("names", nargs="*", help="studies to run (default: all)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--quick", action="store_true", help="small versions of every study (a few minutes in all)")
    p.add_argument("--studies", default=None,
                   help="folder holding the studies (default: the studies shipped with stochdyn)")
    p.set_defaults(handler=_cmd_reproduce)
    p = sub.add_parser("verify", help="check the checksums of a .nc file, a .zarr store or a sweep store",
                       epilog=EXAMPLES["verify"], formatter_class=fmt,
                       description="Check an output of stochdyn for damage: missing, truncated or altered chunks, "
                                   "metadata or checkpoint.")
    p.add_argument("path", help="a .nc file, a .zarr store or a sweep store folder")
    p.add_argument("--quick", action="store_true", help="check presence and sizes only (no checksums)")
    p.set_defaults(handler=_cmd_verify)
    p = sub.add_parser("info", help="print versions, thread count and kernel cache location")
    p.set_defaults(handler=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ._logging import log_to_stream
    from ._validation import ValidationError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        with log_to_stream(sys.stdout):  # progress messages of the stochdyn logger
            return int(args.handler(args) or 0)
    except (ValidationError, OSError, ImportError) as exc:  # OSError: outputs, disk, I/O, connections
        print(f"stochdyn {args.command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except _Interrupted as exc:
        print(f"stochdyn {args.command}: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"stochdyn {args.command}: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
