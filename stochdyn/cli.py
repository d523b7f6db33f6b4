"""The ``stochdyn`` command: ``run`` a spec, print ``info``.

Bad specs and bad arguments end with a one-line message on stderr and exit code 2; nothing is
written unless the run completes (files appear atomically).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["main", "build_parser"]

def _cmd_run(args: argparse.Namespace) -> int:
    from ._validation import ValidationError
    from .io.files import _format_of, save
    from .spec import load_spec, run_spec, summarize

    out = Path(args.output)
    fmt = _format_of(out, None)  # reject an unknown extension before running
    if args.resume and fmt != "zarr":
        raise ValidationError("--resume continues a run streamed to a zarr store: use -o OUT.zarr")
    spec = load_spec(args.spec)
    if spec.sweep is not None:
        raise ValidationError(f"{spec.source} has a [sweep] table: run it with  stochdyn sweep {spec.source} --out STORE")
    progress = False if args.no_progress else None
    if args.workers is not None and args.scheduler is not None:
        raise ValidationError("give --workers or --scheduler, not both")
    shards = {"workers": "serial" if args.workers == 0 else args.workers, "scheduler": args.scheduler}
    print(f"running {spec.name}: {spec.integrator!r} on {spec.target!r}", flush=True)
    if fmt == "zarr":  # stream into the store, with a checkpoint after every chunk
        ds = run_spec(spec, progress=progress, store=out, resume=args.resume, **shards)
    else:
        ds = run_spec(spec, progress=progress, **shards)
        save(ds, out)
    print(summarize(ds, spec.expected))
    print(f"wrote {out}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    import json
    import time

    from ._validation import ValidationError
    from .ensemble.sweeps import sweep
    from .spec import load_spec

    spec = load_spec(args.spec)
    if spec.sweep is None:
        raise ValidationError(f"{spec.source} has no [sweep] table: add one, or use  stochdyn run")
    if spec.until is not None:
        raise ValidationError(f"{spec.source}: sweeps do not take an [until] rule yet; run each point with  stochdyn run")
    run = dict(spec.run)
    run.pop("progress", None)
    run.pop("chunk_steps", None)
    seed = run.pop("seed", None)
    x0 = run.pop("x0", None)
    if args.workers is not None and args.scheduler is not None:
        raise ValidationError("give --workers or --scheduler, not both")
    workers = "serial" if args.workers == 0 else args.workers
    n_points = 1
    for v in spec.sweep.values():
        n_points *= len(v)
    print(f"sweeping {spec.name}: {n_points} points of {spec.integrator!r} on {spec.target!r}", flush=True)
    t0 = time.perf_counter()
    ds = sweep(spec.integrator, spec.target, x0, grid=spec.sweep, rng=seed, workers=workers, scheduler=args.scheduler,
               store=args.out, resume=args.resume, **run)
    sweep_info = json.loads(ds.attrs["sweep"])
    dims = ", ".join(f"{d} ({len(c)})" for d, c in zip(sweep_info["dims"], sweep_info["coords"]))
    print(f"done in {time.perf_counter() - t0:.1f} s: dimensions {dims}; {int(ds['diverged'].sum())} diverged replicas")
    print(f"wrote {args.out}  (open with sd.open_sweep)")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .studies import reproduce

    results = reproduce(args.names or None, out=args.out, quick=args.quick, studies_dir=args.studies)
    return 1 if results["errors"] else 0


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
        ("numba threading layer", str(numba.config.THREADING_LAYER)),
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
        print(f"{k:<{width}}  {v}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="stochdyn", description="Stochastic dynamics on landscapes.")
    parser.add_argument("--version", action="version", version=f"stochdyn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run one study spec (TOML) and write its Dataset")
    p.add_argument("spec", help="spec file, e.g. models/double_well.toml")
    p.add_argument("-o", "--output", required=True, help="output file: .nc (netCDF) or .zarr")
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in the zarr store given by -o (bit-identical to an uninterrupted run)")
    p.add_argument("--workers", type=int, default=None,
                   help="split the replicas into shards on this many local Dask worker processes (0: in this process)")
    p.add_argument("--scheduler", default=None, help="run the shards on a running Dask scheduler at this address")
    p.set_defaults(handler=_cmd_run)
    p = sub.add_parser("sweep", help="run a spec with a [sweep] table: one ensemble per grid point")
    p.add_argument("spec", help="spec file with a [sweep] table")
    p.add_argument("--out", required=True, help="directory for the sweep store (one zarr store per point)")
    p.add_argument("--workers", type=int, default=None, help="local Dask worker processes (0: serial, in this process)")
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
    p.add_argument("--resume", action="store_true", help="skip finished points and resume interrupted ones")
    p.set_defaults(handler=_cmd_sweep)
    p = sub.add_parser("reproduce", help="run the studies in analyses/: figures, report.md and results.json")
    p.add_argument("names", nargs="*", help="studies to run (default: all)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--quick", action="store_true", help="small versions of every study (a few minutes in all)")
    p.add_argument("--studies", default="analyses", help="folder holding the studies (default: ./analyses)")
    p.set_defaults(handler=_cmd_reproduce)
    p = sub.add_parser("info", help="print versions, thread count and kernel cache location")
    p.set_defaults(handler=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ._validation import ValidationError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (ValidationError, FileNotFoundError, FileExistsError) as exc:
        print(f"stochdyn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"stochdyn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stochdyn {args.command}: interrupted; nothing was written.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
