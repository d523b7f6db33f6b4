"""Saying when Numba compiles: a notice before a run compiles kernels, and how long it took.

A first run in a new environment compiles the kernels it needs (seconds), later runs load them
from Numba's disk cache (milliseconds). :func:`CompileWatch` tells the two apart without knowing
anything about the integrator: it listens to Numba's compiler events (:mod:`numba.core.event`).

* ``"numba:run_pass"`` fires for every compiler pass of every function compiled — dispatchers
  (``@njit``) and ``cfunc``\\ s alike — and never for a cache load (checked: a run that loads every
  kernel from the cache fires none). The first one is the moment to print the notice: it comes
  before any real work of the compiler.
* ``"numba:compiler_lock"`` brackets everything the compiler does (type inference, lowering, LLVM
  optimisation and code emission, writing the cache); the outermost holds during which a pass ran
  are summed as the compile time.

Events fired by other threads (another simulation compiling in a thread of the same process)
are ignored.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from numba.core import event

__all__ = ["CompileWatch", "notice_text", "EXPECTED_SECONDS"]

#: upper end of a first call's compile time per integrator family on an idle 2-core machine
#: (the targets of issue 10, checked by ``benchmarks/bench_compile.py``); quoted in the notice
EXPECTED_SECONDS = {"langevin": 3, "sgd": 10, "evolution": 5, "popgen": 4}
_DEFAULT_SECONDS = 30
#: the running watch of each thread
_ACTIVE: dict[int, "CompileWatch"] = {}


def notice_text(what: str, family: str = "") -> str:
    """The one-line notice printed before a run compiles."""
    secs = EXPECTED_SECONDS.get(family, _DEFAULT_SECONDS)
    return (
        f"stochdyn: compiling the machine code for {what} (up to about {secs} s). This happens once per "
        "environment: later runs load it from Numba's cache."
    )


class CompileWatch(event.Listener):
    """Watch a block of code for Numba compilation; print :func:`notice_text` once before it starts.

    Use as a context manager around everything a run does (``with CompileWatch(...) as watch:``),
    or call :meth:`start` and :meth:`stop`; afterwards ``watch.compiled`` says whether anything was compiled and ``watch.seconds`` how
    long the compiler ran (wall-clock, cache loads excluded).

    Parameters
    ----------
    what : str
        What is being compiled, for the notice (e.g. ``"EulerMaruyama on DoubleWell"``).
    family : str
        The integrator family, which sets the duration quoted (:data:`EXPECTED_SECONDS`).
    stream : file, optional
        Where to print (default ``sys.stderr``). If a progress bar is shown, set ``watch.bar`` to
        it: the notice is then written above the bar (``bar.write``).
    """

    def __init__(self, what: str, family: str = "", stream: Any = None):
        self.what = what
        self.family = family
        self.stream = stream
        self.bar: Any = None
        self.compiled = False
        self.seconds = 0.0
        self._thread = threading.get_ident()
        self._lock_depth = 0
        self._lock_t0 = 0.0
        self._pass_in_hold = False

    def start(self) -> "CompileWatch":
        """Start listening (and stop a watch of this thread left running by an earlier failed run)."""
        stale = _ACTIVE.pop(self._thread, None)
        if stale is not None:
            stale.stop()
        event.register("numba:compiler_lock", self)
        event.register("numba:run_pass", self)
        _ACTIVE[self._thread] = self
        return self

    def stop(self) -> None:
        """Stop listening (idempotent)."""
        if _ACTIVE.get(self._thread) is self:
            del _ACTIVE[self._thread]
            event.unregister("numba:run_pass", self)
            event.unregister("numba:compiler_lock", self)

    def __enter__(self) -> "CompileWatch":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _say(self) -> None:
        text = notice_text(self.what, self.family)
        stream = self.stream or sys.stderr
        write = getattr(self.bar, "write", None)
        if write is not None:
            write(text, file=stream)
        else:
            print(text, file=stream, flush=True)

    # event.Listener interface; one object listens to both kinds
    def on_start(self, ev: event.Event) -> None:
        if threading.get_ident() != self._thread:
            return
        if ev.kind == "numba:compiler_lock":
            if self._lock_depth == 0:
                self._lock_t0 = time.perf_counter()
                self._pass_in_hold = False
            self._lock_depth += 1
        else:  # numba:run_pass
            self._pass_in_hold = True
            if not self.compiled:
                self.compiled = True
                self._say()

    def on_end(self, ev: event.Event) -> None:
        if threading.get_ident() != self._thread or ev.kind != "numba:compiler_lock" or self._lock_depth == 0:
            return
        self._lock_depth -= 1
        if self._lock_depth == 0 and self._pass_in_hold:
            self.seconds += time.perf_counter() - self._lock_t0
