r"""The compiled face of stopping rules: one C signature, one cached interpreter, calls by address.

Every rule a kernel can check — built-in, user-written, or an ``|`` combination of them — is
evaluated through ONE C signature, :data:`RULE_SIG`::

    intp rule(double *x, intp n, intp d, double energy,
              double *theta, intp ntheta, int64 *aux, intp naux, double *work, intp nwork)

* ``x`` points at the replica's state: ``n`` rows of ``d`` numbers, C order (``n = 1`` for a point —
  Langevin, SGD, the mean of an evolution strategy; ``n = N`` for a whole population, genotypes as
  allele indices stored as floats);
* ``energy`` is the family's scalar (see :mod:`stochdyn.stopping`);
* ``theta`` is the *program* (:func:`pack_program`): a header (the number of rules K and whether the
  rule reads ``energy``), then the rules' opcodes and parameters, so new parameters or new
  combinations never recompile anything;
* ``aux`` holds in-process addresses (a landscape's block function for :class:`~stochdyn.stopping.Basin`,
  a user rule's own cfunc), resolved at run time and never recorded;
* ``work`` is scratch private to the caller's unit of parallel work (``nwork`` doubles);
* the result is 0 if no rule holds, else 1 + the index of the first rule of the combination that holds.

A kernel receives one function of that signature: the rule's own small ``cfunc`` for a single
built-in rule (:data:`RULE_FUNCS`, one per opcode, each compiled on first use and cached on disk), or
:data:`interpreter` for a combination or a user rule. The interpreter walks the program and calls
each part through its address in ``aux`` (:func:`call_rule_at`), so a combination costs no
compilation beyond its parts, and a run compiles only the rules it uses (measured: the interpreter
with every built-in rule inlined took 1.45 s to compile; a single rule's function ~0.1-0.2 s).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import carray, njit, types
from numba.extending import intrinsic

from .._numba_utils import LazyCFunc, row_ptr

__all__ = ["RULE_SIG", "interpreter", "RULE_FUNCS", "evaluate_rows", "pack_program", "OPCODES", "HEADER", "PROGRAM_HEADER",
           "P_NEEDS_ENERGY"]

_f8p = types.CPointer(types.float64)

#: C signature of every compiled stopping rule (see the module docstring)
RULE_SIG = types.intp(_f8p, types.intp, types.intp, types.float64, _f8p, types.intp,
                      types.CPointer(types.int64), types.intp, _f8p, types.intp)

#: opcodes of the built-in rules in a program
OP_FIXATION, OP_REGION, OP_BALL, OP_ENERGY, OP_BASIN, OP_USER = 1, 2, 3, 4, 5, 6
OPCODES = {"Fixation": OP_FIXATION, "Region": OP_REGION, "Ball": OP_BALL, "EnergyBelow": OP_ENERGY,
           "Basin": OP_BASIN, "user": OP_USER}
#: numbers before each rule's parameters in a program: opcode, number of parameters, aux index of the rule's
#: own data (-1: none; Basin: its landscape's block function), aux index of the function that evaluates it
HEADER = 4
#: numbers before the first rule of a program: K, needs_energy (1.0 if some rule reads ``energy``)
PROGRAM_HEADER = 2
#: index of the needs_energy flag in a program (kernels read it to skip an expensive energy)
P_NEEDS_ENERGY = 1


def pack_program(parts: list[tuple[int, np.ndarray, int, int]], needs_energy: bool = True) -> np.ndarray:
    """``theta`` of a rule or combination:
    ``[K, needs_energy, (opcode, n_params, aux_index, fn_index, params...) x K]``."""
    out = [float(len(parts)), float(bool(needs_energy))]
    for op, params, aux, fn in parts:
        p = np.asarray(params, dtype=np.float64).ravel()
        out += [float(op), float(p.size), float(aux), float(fn)]
        out += p.tolist()
    return np.ascontiguousarray(out, dtype=np.float64)


# -- calls through in-process addresses --------------------------------------------------------
@intrinsic
def call_rule_at(typingctx, addr, xp, n, d, e, tp, nt, ap, na, wp, nw):
    """Call the :data:`RULE_SIG` function at address ``addr`` (an int64)."""
    sig = types.intp(types.int64, xp, n, d, e, tp, nt, ap, na, wp, nw)

    def codegen(context, builder, signature, args):
        argtys = [context.get_value_type(a) for a in signature.args[1:]]
        fnty = ir.FunctionType(context.get_value_type(types.intp), argtys)
        return builder.call(builder.inttoptr(args[0], fnty.as_pointer()), args[1:])

    return sig, codegen


@intrinsic
def call_landscape_at(typingctx, addr, xp, gp, vp, n, d, tp, nt):
    """Call the landscape block function (``LANDSCAPE_BLOCK_SIG``) at address ``addr``."""
    sig = types.void(types.int64, xp, gp, vp, n, d, tp, nt)

    def codegen(context, builder, signature, args):
        argtys = [context.get_value_type(a) for a in signature.args[1:]]
        fnty = ir.FunctionType(ir.VoidType(), argtys)
        builder.call(builder.inttoptr(args[0], fnty.as_pointer()), args[1:])
        return context.get_dummy_value()

    return sig, codegen


# -- the built-in rules --------------------------------------------------------------------------
@njit(inline="always", cache=True)
def _column_mean(x, n, j):
    s = 0.0
    for i in range(n):
        s += x[i, j]
    return s / n


@njit(inline="always", cache=True)
def _fixation(x, n, d, allele):
    """Every column (site) monomorphic; with ``allele >= 0`` every site carries that allele."""
    for j in range(d):
        a = x[0, j]
        if allele >= 0.0 and a != allele:
            return False
        for i in range(1, n):
            if x[i, j] != a:
                return False
    return True


@njit(inline="always", cache=True)
def _region(x, n, th, o):
    v = _column_mean(x, n, int(th[o]))
    return v >= th[o + 2] if th[o + 1] > 0.0 else v <= th[o + 2]


@njit(inline="always", cache=True)
def _ball(x, n, d, th, o):
    s = 0.0
    for j in range(d):
        c = _column_mean(x, n, j) - th[o + 1 + j]
        s += c * c
    return s <= th[o]


@njit(inline="always", cache=True)
def _dist2(w, a, th, b, d):
    s = 0.0
    for j in range(d):
        c = w[a + j] - th[b + j]
        s += c * c
    return s


@njit(cache=True)
def _basin(x, n, d, th, o, ap, ai, w):
    """Gradient flow from the (mean) point ends in the minimum's basin (see ``Basin``).

    Parameters at ``th[o:]``: r_in^2, gtol, max_iter, h_max, n_others, minimum (d),
    others (n_others x (d + 1): centre, r^2), n_landscape_theta, landscape theta.
    Work: y, g, y', g' (d each), U(y), U(y').
    """
    r2 = th[o]
    gtol2 = th[o + 1] * th[o + 1]
    max_iter = int(th[o + 2])
    h_max = th[o + 3]
    n_oth = int(th[o + 4])
    m0 = o + 5
    oth = m0 + d
    lt0 = oth + n_oth * (d + 1)
    nlt = int(th[lt0])
    addr = ap[ai]
    y, g, yt, gt, v, vt = 0, d, 2 * d, 3 * d, 4 * d, 4 * d + 1
    for j in range(d):
        w[y + j] = _column_mean(x, n, j)
        if not math.isfinite(w[y + j]):
            return False
    if _dist2(w, y, th, m0, d) <= r2:  # the cheap pre-check: a ball known to lie in the basin
        return True
    call_landscape_at(addr, row_ptr(w, y), row_ptr(w, g), row_ptr(w, v), 1, d, row_ptr(th, lt0 + 1), nlt)
    h = h_max
    for it in range(max_iter + 1):
        if _dist2(w, y, th, m0, d) <= r2:
            return True
        for k in range(n_oth):
            b = oth + k * (d + 1)
            if _dist2(w, y, th, b, d) <= th[b + d]:
                return False
        gg = 0.0
        for j in range(d):
            gg += w[g + j] * w[g + j]
        if not gg > gtol2 or it == max_iter:  # a critical point outside the ball, NaN, or out of budget
            return False
        while True:  # Armijo backtracking: U(y - h g) <= U(y) - h |g|^2 / 2
            for j in range(d):
                w[yt + j] = w[y + j] - h * w[g + j]
            call_landscape_at(addr, row_ptr(w, yt), row_ptr(w, gt), row_ptr(w, vt), 1, d, row_ptr(th, lt0 + 1), nlt)
            if w[vt] <= w[v] - 0.5 * h * gg:
                break
            h *= 0.5
            if h < 1e-12 * h_max:
                return False
        for j in range(2 * d):
            w[y + j] = w[yt + j]
        w[v] = w[vt]
        h = min(2.0 * h, h_max)
    return False


# -- one function per built-in rule: each reads the first part of a program (after PROGRAM_HEADER) -------
_P = PROGRAM_HEADER + HEADER  # where a first part's parameters start


def _fixation_rule(xp, n, d, e, tp, nt, ap, na, wp, nw):
    th = carray(tp, (nt,))
    return 1 if _fixation(carray(xp, (n, d)), n, d, th[_P]) else 0


def _region_rule(xp, n, d, e, tp, nt, ap, na, wp, nw):
    return 1 if _region(carray(xp, (n, d)), n, carray(tp, (nt,)), _P) else 0


def _ball_rule(xp, n, d, e, tp, nt, ap, na, wp, nw):
    return 1 if _ball(carray(xp, (n, d)), n, d, carray(tp, (nt,)), _P) else 0


def _energy_rule(xp, n, d, e, tp, nt, ap, na, wp, nw):
    return 1 if e < carray(tp, (nt,))[_P] else 0


def _basin_rule(xp, n, d, e, tp, nt, ap, na, wp, nw):
    th = carray(tp, (nt,))
    hit = _basin(carray(xp, (n, d)), n, d, th, _P, carray(ap, (na,)), int(th[PROGRAM_HEADER + 2]), carray(wp, (nw,)))
    return 1 if hit else 0


#: opcode -> the function of a single built-in rule (compiled on first use, cached on disk)
RULE_FUNCS = {OP_FIXATION: LazyCFunc(_fixation_rule, RULE_SIG), OP_REGION: LazyCFunc(_region_rule, RULE_SIG),
              OP_BALL: LazyCFunc(_ball_rule, RULE_SIG), OP_ENERGY: LazyCFunc(_energy_rule, RULE_SIG),
              OP_BASIN: LazyCFunc(_basin_rule, RULE_SIG)}


def _interpreter(xp, n, d, e, tp, nt, ap, na, wp, nw):
    """Parts in order, each through its function's address ``aux[fn_index]``: a built-in rule's function
    gets the program from two doubles before its part (where it expects the header), a user rule its
    parameters."""
    th = carray(tp, (nt,))
    a = carray(ap, (na,))
    K = int(th[0])
    o = PROGRAM_HEADER
    for k in range(K):
        op = int(th[o])
        npar = int(th[o + 1])
        fi = int(th[o + 3])
        if op == OP_USER:
            hit = call_rule_at(a[fi], xp, n, d, e, row_ptr(th, o + HEADER), npar, ap, na, wp, nw)
        else:
            b = o - PROGRAM_HEADER
            hit = call_rule_at(a[fi], xp, n, d, e, row_ptr(th, b), nt - b, ap, na, wp, nw)
        if hit != 0:
            return k + 1
        o += HEADER + npar
    return 0


#: the function of combinations and user rules: compiled on first use, cached on disk
interpreter = LazyCFunc(_interpreter, RULE_SIG)


@njit(cache=True)
def evaluate_rows(fn, theta, aux, x, energy, work, out):
    """``out[r] = fn(x[r], energy[r])`` for every replica ``r`` of ``x`` (shape ``(R, n, d)``); ``work``
    has one row per replica. The compiled evaluation the driver uses on the initial state (and the
    tests outside kernels); serial: one pass over the replicas, cheap to compile."""
    R, n, d = x.shape
    for r in range(R):
        out[r] = fn(row_ptr(x, r), n, d, energy[r], row_ptr(theta, 0), theta.shape[0], row_ptr(aux, 0),
                    aux.shape[0], row_ptr(work, r), work.shape[1])
