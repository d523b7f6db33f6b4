"""The one thread runner (``stochdyn._numba_utils.run_blocks``): every block exactly once, in static and
dynamic assignment, for any thread count; per-thread scratch; errors re-raised after every thread stopped;
a pool made again in a forked child.

The kernels here are tiny ``nogil`` functions (compiled without the disk cache, ~0.2 s) that mark
the blocks they ran, so the tests check the runner itself, not an integrator (the integrators'
results are checked for thread invariance in tests/test_invariance.py, tests/evolution and tests/sgd).
"""

from __future__ import annotations

import os
import sys
import threading
import time

import numba
import numpy as np
import pytest
from numba import njit

from stochdyn import _numba_utils as nu


@njit(nogil=True)
def _mark(count, owner, tag, buf, b0, b1):
    for b in range(b0, b1):
        buf[0] = b  # per-thread scratch: written by one thread only
        count[b] += 1
        owner[b] = tag[0]


@pytest.mark.parametrize("blocks_per_thread", [1, 4])
@pytest.mark.parametrize("n_blocks", [0, 1, 2, 7, 64])
def test_every_block_runs_exactly_once(n_blocks, blocks_per_thread):
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    count = np.zeros(n_blocks, dtype=np.int64)
    owner = np.full(n_blocks, -1, dtype=np.int64)
    made = []

    def scratch():
        made.append(threading.get_ident())
        return (np.array([len(made)], dtype=np.int64), np.zeros(1, dtype=np.int64))

    nu.run_blocks(_mark, (count, owner), n_blocks, scratch, blocks_per_thread=blocks_per_thread)
    assert np.all(count == 1)
    threads = min(numba.get_num_threads(), max(n_blocks, 1))
    assert len(made) == max(threads, 1)  # one set of scratch buffers per thread, none shared
    if n_blocks:
        assert set(owner) <= set(range(1, len(made) + 1))


def test_one_thread_runs_everything_in_the_caller():
    count = np.zeros(9, dtype=np.int64)
    owner = np.zeros(9, dtype=np.int64)
    numba.set_num_threads(1)
    try:
        nu.run_blocks(_mark, (count, owner), 9, lambda: (np.array([7]), np.zeros(1, dtype=np.int64)),
                      blocks_per_thread=4)
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert np.all(count == 1) and np.all(owner == 7)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two Numba threads")
@pytest.mark.parametrize("blocks_per_thread", [1, 4])
def test_an_error_in_a_worker_is_raised_after_every_thread_stopped(blocks_per_thread):
    numba.set_num_threads(2)
    running = []
    main = threading.get_ident()

    def kernel(log, b0, b1):
        running.append(1)
        try:
            if b0 < b1 and threading.get_ident() != main:
                raise RuntimeError(f"block {b0} failed")
            if b0 < b1:
                time.sleep(0.02)  # let the worker take its first range
            log.extend(range(b0, b1))
        finally:
            running.pop()

    log: list[int] = []
    with pytest.raises(RuntimeError, match="failed"):
        nu.run_blocks(kernel, (log,), 16, blocks_per_thread=blocks_per_thread)
    assert not running  # nothing still runs when the call returns
    assert len(log) < 16


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs fork")
def test_the_pool_is_made_again_in_a_forked_child():
    nu._pool()
    pid = os.fork()
    if pid == 0:  # child: a fresh pool that runs work (the parent's threads do not exist here)
        ok = nu._pool() is not None and nu._POOL_PID == os.getpid()
        count = np.zeros(8, dtype=np.int64)
        nu.run_blocks(_mark, (count, np.zeros(8, dtype=np.int64)),
                      8, lambda: (np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)), blocks_per_thread=4)
        os._exit(0 if ok and np.all(count == 1) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
