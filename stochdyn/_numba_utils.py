"""Small Numba helpers shared by kernels: raw data pointers, the landscape function types, and the
one thread runner (:func:`run_blocks`) of every serial (``nogil``) kernel over ranges of replica blocks."""

from __future__ import annotations

import atexit
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable

import numba
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

#: C signature of a compiled landscape evaluated on a block of ``n`` rows of dimension ``d``:
#: ``void block(double *x, double *grad, double *value, intp n, intp d, double *theta, intp ntheta)``
#: writes ``grad[i, :] = dU/dx (x[i, :])`` and ``value[i] = U(x[i, :])`` for ``i < n``; ``theta``
#: holds the landscape's parameters (``ntheta`` of them), so new parameters never recompile.
LANDSCAPE_BLOCK_SIG = types.void(
    types.CPointer(types.float64),
    types.CPointer(types.float64),
    types.CPointer(types.float64),
    types.intp,
    types.intp,
    types.CPointer(types.float64),
    types.intp,
)


#: C signature of a compiled landscape evaluated on a block of ``n`` points stored by coordinate:
#: ``void columns(double *x, double *grad, double *value, intp n, intp d, intp ld, double *theta, intp ntheta)``
#: with coordinate ``i`` of point ``r`` at ``x[i * ld + r]`` (``ld >= n``), gradients likewise, and
#: ``value[r] = U(x[:, r])``. The same numbers as :data:`LANDSCAPE_BLOCK_SIG`, laid out so that a
#: loop over the points of a block is contiguous and vectorises (Langevin kernels use this one).
LANDSCAPE_COLUMNS_SIG = types.void(
    types.CPointer(types.float64),
    types.CPointer(types.float64),
    types.CPointer(types.float64),
    types.intp,
    types.intp,
    types.intp,
    types.CPointer(types.float64),
    types.intp,
)


class LazyCFunc:
    """A ``numba.cfunc`` compiled (or loaded from the disk cache) on first use, not at import.

    ``import stochdyn`` then costs nothing for the landscapes a program never uses.
    """

    def __init__(self, pyfunc, sig=LANDSCAPE_BLOCK_SIG, cache: bool = True):
        self.pyfunc = pyfunc
        self.sig = sig
        self.cache = cache
        self._compiled = None

    def get(self):
        if self._compiled is None:
            from numba import cfunc

            self._compiled = cfunc(self.sig, cache=self.cache)(self.pyfunc)
        return self._compiled


def lazy_cfunc(pyfunc):
    """Decorator: a :class:`LazyCFunc` with the landscape block signature, cached on disk."""
    return LazyCFunc(pyfunc)


def lazy_columns_cfunc(pyfunc):
    """Decorator: a :class:`LazyCFunc` with the landscape columns signature, cached on disk."""
    return LazyCFunc(pyfunc, LANDSCAPE_COLUMNS_SIG)


@intrinsic
def row_ptr(typingctx, arr, row):
    """Pointer to the first element of ``arr[row]`` (``arr`` C-contiguous, no bounds check)."""
    if not isinstance(arr, types.Array):
        return None
    sig = types.CPointer(arr.dtype)(arr, types.intp)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        strides = cgutils.unpack_tuple(builder, ary.strides)
        offset = builder.mul(args[1], strides[0])
        base = builder.ptrtoint(ary.data, cgutils.intp_t)
        return builder.inttoptr(builder.add(base, offset), ary.data.type)

    return sig, codegen


@njit(cache=True)
def eval_block(fn, theta, x, grad, value):
    """Evaluate a compiled landscape ``fn`` on every row of ``x`` (shape ``(n, d)``, C order)."""
    fn(row_ptr(x, 0), row_ptr(grad, 0), row_ptr(value, 0), x.shape[0], x.shape[1], row_ptr(theta, 0), theta.shape[0])


# -- threads ------------------------------------------------------------------------------------
_POOL: ThreadPoolExecutor | None = None
_POOL_PID = -1
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The worker threads (``NUMBA_NUM_THREADS - 1`` of them), made on first use and again in a
    forked child (threads do not survive a fork)."""
    global _POOL, _POOL_PID
    with _POOL_LOCK:
        if _POOL is None or _POOL_PID != os.getpid():
            workers = max(1, numba.config.NUMBA_NUM_THREADS - 1)  # type: ignore[attr-defined]  # set at import
            _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stochdyn")
            _POOL_PID = os.getpid()
            atexit.register(_POOL.shutdown)
        return _POOL


def run_blocks(kernel: Callable, args: tuple, n_blocks: int, scratch: Callable[[], tuple] = tuple, *,
               blocks_per_thread: int = 1) -> None:
    """Run ``kernel(*args, *scratch(), b0, b1)`` over blocks ``[0, n_blocks)`` on ``numba.get_num_threads()`` threads.

    The one thread runner of every kernel (Langevin, SGD, evolution). ``kernel`` is a serial
    ``@njit(nogil=True)`` function that processes blocks ``b0 <= b < b1`` (blocks of replicas, or
    single replicas); the calling thread is one of the threads, a small pool (made again in a
    forked child) the others. Each thread gets its own scratch buffers from ``scratch()``, so the
    kernel allocates nothing.

    * ``blocks_per_thread=1``: static assignment, one contiguous range per thread (like a
      ``prange``); for kernels whose blocks all cost the same.
    * ``blocks_per_thread=k > 1``: ranges of about ``n_blocks / (k * threads)`` blocks are handed
      out dynamically to whichever thread is free (replicas whose cost varies: populations that
      freeze, runs that restart).

    Every block draws only from its own replicas' streams and writes only their rows, so results
    never depend on the thread count or on which thread ran which range. A serial kernel instead of
    a ``prange`` saves the parallel-loop machinery at compile time (about 0.9 s per Langevin kernel,
    14 s for CMA-ES, measured; see docs/design.md) at no cost at run time.

    With several threads the kernel is first called on an empty range in this thread, so that
    compilation (or the cache load) happens here, once, where the compile notice listens. The call
    returns only after every thread has finished — also on Ctrl-C or an error, after which no
    further range is started — so no thread is still writing into the arrays afterwards; the first
    error of another thread is raised here.
    """
    threads = min(numba.get_num_threads(), n_blocks)
    if threads <= 1:
        kernel(*args, *scratch(), 0, n_blocks)
        return
    mine = scratch()
    kernel(*args, *mine, 0, 0)  # compile or load here, not in several threads at once
    if blocks_per_thread <= 1:
        bounds = [n_blocks * t // threads for t in range(threads + 1)]
        futures = [_pool().submit(kernel, *args, *scratch(), bounds[t], bounds[t + 1]) for t in range(1, threads)]
        try:
            kernel(*args, *mine, bounds[0], bounds[1])
        finally:
            wait(futures)
    else:
        size = -(-n_blocks // (blocks_per_thread * threads))
        starts = iter(range(0, n_blocks, size))
        lock = threading.Lock()
        failed = threading.Event()

        def work(buffers: tuple) -> None:
            try:
                while not failed.is_set():
                    with lock:
                        b0 = next(starts, None)
                    if b0 is None:
                        return
                    kernel(*args, *buffers, b0, min(n_blocks, b0 + size))
            except BaseException:
                failed.set()  # the other threads start no further range
                raise

        futures = [_pool().submit(work, scratch()) for _ in range(threads - 1)]
        try:
            work(mine)
        finally:
            wait(futures)
    for f in futures:
        f.result()  # re-raise an error from another thread


@intrinsic
def stack_scratch(typingctx, n):
    """A C-contiguous float64 array of ``n`` uninitialised doubles on the stack of the calling function.

    Used as the gradient row of value-only landscape blocks: a buffer that is written and never
    read lets LLVM delete the gradient computation (and the transcendental calls it needs) from
    the inlined row function, so one formula serves both block functions. Call it once per
    function (not in a loop): the stack grows with every call.
    """
    if not isinstance(n, types.Integer):
        return None
    arrty = types.Array(types.float64, 1, "C")
    sig = arrty(types.intp)

    def codegen(context, builder, signature, args):
        (count,) = args
        ptr = cgutils.alloca_once(builder, context.get_value_type(types.float64), size=count)
        ary = context.make_array(arrty)(context, builder)
        itemsize = context.get_constant(types.intp, 8)
        context.populate_array(ary, data=ptr, shape=cgutils.pack_array(builder, [count]),
                               strides=cgutils.pack_array(builder, [itemsize]), itemsize=itemsize, meminfo=None)
        return ary._getvalue()

    return sig, codegen
