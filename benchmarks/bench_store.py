"""Benchmark: a streamed run of 10^6 replicas x 10^5 steps, recorded every 1000 steps, into zarr.

Issue 7 requires it to complete on a 2-core, 24 GiB machine with peak memory under 2 GiB (the
records alone are 101 x 10^6 x 3 x 8 B = 2.4 GB, so they must stream). The run is done in a child
process so that its peak resident memory (ru_maxrss) is its own; it prints the peak, the record
volume, the wall time and replica-steps per second, and checks the store opens with all records.

    python benchmarks/bench_store.py [--replicas 1000000] [--steps 100000] [--record-every 1000] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import stochdyn as sd
    R, N, rec, store = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    t0 = time.perf_counter()
    ds = sd.simulate(sd.EulerMaruyama(dt=1e-3, temperature=1/3), sd.landscapes.DoubleWell(dim=2), x0=[-1.0, 0.0],
                     n_replicas=R, n_steps=N, record_every=rec, rng=0, store=store, progress=False)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    last = float(ds.x.isel(time=-1, dim=1).var())
    print(json.dumps({"wall": wall, "peak": peak, "records_bytes": int(ds.x.nbytes + ds.energy.nbytes),
                      "n_records": ds.sizes["time"], "var_x1_final": last}))
    """
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicas", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--record-every", type=int, default=1000)
    ap.add_argument("--out", default=None, help="directory for the store (default: a temporary one, removed)")
    args = ap.parse_args()
    tmp = Path(args.out or tempfile.mkdtemp(prefix="stochdyn-bench-"))
    store = tmp / "run.zarr"
    shutil.rmtree(store, ignore_errors=True)
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, str(args.replicas), str(args.steps), str(args.record_every),
                              str(store)], capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
    finally:
        if args.out is None:
            shutil.rmtree(tmp, ignore_errors=True)
    work = args.replicas * args.steps
    print(f"{args.replicas} replicas x {args.steps} steps, recorded every {args.record_every}: "
          f"{r['n_records']} records, {r['records_bytes'] / 2**30:.2f} GiB of records streamed to zarr")
    print(f"wall time {r['wall']:.0f} s ({work / r['wall']:.3g} replica-steps/s, including zarr writes and checkpoints)")
    print(f"peak resident memory {r['peak'] / 2**30:.2f} GiB (target < 2 GiB)")
    print(f"final Var(x1) = {r['var_x1_final']:.4f} (theory T/(k(1 - k dt/2)) = 0.3335)")


if __name__ == "__main__":
    main()
