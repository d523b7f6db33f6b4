"""Size checks made before a run allocates anything: memory against what this machine has available.

The state of a run (positions, generator words, momenta, populations, scratch buffers) is measured
by building it for one and for two replicas — every state array has the replica axis first, so
its size is affine in the number of replicas — and the records are counted from the recorded
variables. Both are compared with the memory available now (``MemAvailable``, within a cgroup
limit if one applies), and a run that would not fit is refused with the numbers, before any array
of its size exists. Disk space for stores and files is checked in :mod:`stochdyn.io.output`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._validation import ValidationError
from ..io.output import fmt_bytes

__all__ = ["available_memory", "state_nbytes", "check_memory"]


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory() -> int | None:
    """Bytes of memory available to this process now (``None`` if this platform does not say)."""
    avail = None
    try:
        import psutil

        avail = int(psutil.virtual_memory().available)
    except Exception:
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
        except OSError:
            pass
    limit, used = _read_int("/sys/fs/cgroup/memory.max"), _read_int("/sys/fs/cgroup/memory.current")
    if limit is not None and used is not None:
        avail = max(0, limit - used) if avail is None else min(avail, max(0, limit - used))
    return avail


def _nbytes(state: Any) -> int:
    return sum(int(a.nbytes) for a in (*state.arrays.values(), *state.scratch.values()))


def state_nbytes(integrator: Any, target: Any, x0: Any, n_replicas: int) -> int:
    """Bytes of the state of ``n_replicas`` replicas, from the state built for one and for two."""

    def probe(n: int) -> int:
        # one x0 row per probed replica (repeated when x0 has fewer rows, e.g. a run of one replica)
        x = x0 if x0 is None or np.ndim(x0) <= 1 else np.asarray(x0)[np.arange(n) % np.shape(x0)[0]]
        xa = integrator.prepare_x0(x, target, n)
        return _nbytes(integrator.init_state(target, xa, np.zeros((n, 2), dtype=np.uint64))) + 8 * n  # + replica ids

    one, two = probe(1), probe(2)
    per = max(0, two - one)
    return int(one + per * (n_replicas - 1))


def check_memory(parts: dict[str, int], advice: str) -> None:
    """Refuse a run whose ``parts`` (name -> bytes) exceed the memory available now."""
    need = sum(parts.values())
    avail = available_memory()
    if avail is None or need <= avail:
        return
    detail = " + ".join(f"{k} {fmt_bytes(v)}" for k, v in parts.items() if v)
    raise ValidationError(
        f"This run needs about {fmt_bytes(need)} of memory ({detail}) but {fmt_bytes(avail)} is available on this "
        f"machine: {advice}."
    )
