"""Run a serial, GIL-free kernel over blocks of replicas on Numba's thread count.

The evolution and population kernels are plain ``@njit(nogil=True, cache=True)`` functions of a
replica range ``(r0, r1, ...)``; :func:`over_replicas` hands out blocks of replicas to
``numba.get_num_threads()`` threads (the calling thread and a small pool), so a run uses the
cores as a ``prange`` kernel would.

Why not ``prange``: a ``parallel=True`` kernel is compiled three times over — its own code, the
outlined gufunc, and the launcher, each re-optimising and re-emitting everything the body calls —
and the parfor passes scale badly with the size of the body. Measured on the CMA-ES kernel
(single-threaded CPU time of a cold first call): 22 s as a ``prange`` kernel, 8 s as one serial
kernel (docs/design.md). Every replica draws only from its own generator and writes only its own
rows, so results do not depend on the number of threads or on which thread ran which block.

The first call of a kernel in a process is made on an empty range in the calling thread, so that
compiling (or loading from the disk cache) happens there, where the compile notice listens.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Callable

import numba

__all__ = ["over_replicas"]

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < workers:
            _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stochdyn")
        return _POOL


def over_replicas(kernel: Callable, n_replicas: int, *args: Any, blocks_per_thread: int = 4) -> None:
    """Call ``kernel(r0, r1, *args)`` on blocks ``[r0, r1)`` covering ``range(n_replicas)``.

    Blocks are handed out dynamically to ``numba.get_num_threads()`` threads (the caller is one of
    them); the call returns when every block is done, and re-raises the first error of any block.
    """
    kernel(0, 0, *args)  # compile or load here, in the calling thread
    threads = max(1, numba.get_num_threads())
    if threads == 1 or n_replicas <= 1:
        kernel(0, n_replicas, *args)
        return
    size = max(1, -(-n_replicas // (blocks_per_thread * threads)))
    starts = iter(range(0, n_replicas, size))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                r0 = next(starts, None)
            if r0 is None:
                return
            kernel(r0, min(n_replicas, r0 + size), *args)

    futures = [_pool(threads - 1).submit(work) for _ in range(min(threads - 1, n_replicas // size))]
    try:
        work()
    finally:
        wait(futures)  # never leave a kernel writing into the state after this returns
    for f in futures:
        f.result()
