r"""Fitness for population methods: maps W = f(U) on landscapes, and fitness of discrete genotypes.

Population-genetic integrators (:class:`~stochdyn.WrightFisher`, :class:`~stochdyn.Moran`) select
parents with probability proportional to a fitness :math:`W \ge 0`. Everything is expressed through
an energy U, so that the same landscapes serve Langevin, SGD and evolution:

* on a continuous landscape, U is the landscape's potential at the individual's trait x, and
  :math:`W = f(U; s)` with a **fitness map** f and a selection strength ``s`` (the integrator's
  ``selection`` parameter). Built in: ``"exponential"``, :math:`W = e^{-sU}` (the default: then
  :math:`\log W = -sU`, so ``s`` is a *haploid log-fitness* coefficient per unit of U), and
  ``"linear"``, :math:`W = 1 - sU` (must stay >= 0 where the population goes). Your own map:
  the :func:`fitness_map` decorator;
* a **genotype landscape** (:class:`AdditiveFitness`, :class:`MultiplicativeFitness`,
  :class:`NKFitness`) defines a fitness :math:`W(g)` of L sites with k alleles each, and its energy
  is :math:`U(g) = -\log W(g)`; with the default exponential map and ``s = 1`` the integrator uses
  exactly W(g) (in general :math:`W(g)^s`).

Genotypes are stored as allele indices ``0 .. k-1`` in float arrays (exact for k < 2^53), so a
genotype landscape evaluates through the same compiled block signature as a continuous landscape
(:data:`stochdyn._numba_utils.LANDSCAPE_BLOCK_SIG`; the gradient slot is written with zeros).
"""

from __future__ import annotations

import inspect
import textwrap
from typing import Any, Callable, ClassVar

import numpy as np
from numba import carray, cfunc, njit, types

from . import _faults
from ._faults import FaultCell, guard, wrapper_globals
from ._numba_utils import LazyCFunc, eval_block, lazy_cfunc, row_ptr
from ._validation import ValidationError, check_array, check_int

__all__ = [
    "FitnessMap",
    "fitness_map",
    "resolve_fitness_map",
    "FITNESS_MAPS",
    "GenotypeLandscape",
    "AdditiveFitness",
    "MultiplicativeFitness",
    "NKFitness",
    "genotype_landscape_from_dict",
    "GENOTYPE_LANDSCAPES",
]

#: C signature of a fitness map on a block: ``void map(double *u, double *w, intp n, double s)``
FITNESS_MAP_SIG = types.void(types.CPointer(types.float64), types.CPointer(types.float64), types.intp, types.float64)


@njit(cache=True)
def _apply_map(fn, u, w, s):
    fn(row_ptr(u, 0), row_ptr(w, 0), u.shape[0], s)


class FitnessMap:
    """A map :math:`W = f(U; s)` from energy to fitness, compiled once for every integrator kernel."""

    def __init__(self, name: str, compiled: Any, formula: str, fault_cell: Any = None):
        self.name = name
        self._compiled = compiled
        self.formula = formula
        self.fault_cell = fault_cell  # where faults of a user map are counted (stochdyn/_faults.py)

    @property
    def compiled(self):
        """The compiled block function (``numba.cfunc``; built-in maps compile on first use)."""
        c = self._compiled
        return c.get() if isinstance(c, LazyCFunc) else c

    def __call__(self, u: Any, selection: float = 1.0) -> np.ndarray:
        """W for an array of energies (NumPy in, NumPy out)."""
        arr = np.ascontiguousarray(u, dtype=np.float64)
        flat = arr.ravel().copy()
        out = np.empty_like(flat)
        with guard(self.fault_cell, "when evaluated"):
            _apply_map(self.compiled, flat, out, float(selection))
        return out.reshape(arr.shape)

    def __repr__(self) -> str:
        return f"FitnessMap({self.name!r}: {self.formula})"


def _exponential_map(up, wp, n, s):
    u = carray(up, (n,))
    w = carray(wp, (n,))
    for i in range(n):
        w[i] = np.exp(-s * u[i])


def _linear_map(up, wp, n, s):
    u = carray(up, (n,))
    w = carray(wp, (n,))
    for i in range(n):
        w[i] = 1.0 - s * u[i]


#: name -> FitnessMap; user maps made with :func:`fitness_map` are added under their function name
FITNESS_MAPS: dict[str, FitnessMap] = {
    "exponential": FitnessMap("exponential", LazyCFunc(_exponential_map, FITNESS_MAP_SIG), "W = exp(-s U)"),
    "linear": FitnessMap("linear", LazyCFunc(_linear_map, FITNESS_MAP_SIG), "W = 1 - s U"),
}


def fitness_map(func: Callable[[float, float], float]) -> FitnessMap:
    """Make a fitness map from a Python function ``f(u, s) -> w`` (Numba nopython subset).

    The map is registered under the function's name, so integrators can refer to it by name
    (``WrightFisher(..., fitness="my_map")``) and Datasets record that name.

    Examples
    --------
    >>> @sd.fitness.fitness_map                      # doctest: +SKIP
    ... def truncation(u, s):
    ...     return 1.0 if u < s else 0.0
    """
    if not callable(func) or len(inspect.signature(func).parameters) != 2:
        raise ValidationError("A fitness map must be a function f(u, s) -> w of two arguments.")
    name = func.__name__
    cell = FaultCell("fitness map", name, lambda a, b, c, d, e, k: func(float(a[0]), e),
                     lambda a, b, c, d, e, k: {"u": float(a[0]), "s": e})
    # through try_call: an exception writes W = NaN, which freezes the population at that generation,
    # and is counted in ``cell`` so that the run stops with UserCodeError naming it (stochdyn/_faults.py)
    src = textwrap.dedent(
        """
        def _block(up, wp, n, s):
            u = carray(up, (n,))
            w = carray(wp, (n,))
            for i in range(n):
                ok, v = _try(_user, (u[i], s))
                if ok:
                    w[i] = v
                else:
                    w[i] = np.nan
                    _note(_NOTE, (_CELL, ptr_at(up, i), 1, 1, up, 0, up, 0, up, 0, s, 0))
        """
    )
    ns: dict[str, Any] = {**wrapper_globals(cell), "_user": njit(boundscheck=_faults.BOUNDSCHECK)(func)}
    exec(src, ns)
    try:
        compiled = cfunc(FITNESS_MAP_SIG)(ns["_block"])
    except Exception as exc:
        raise ValidationError(f"Fitness map {name!r} could not be compiled by Numba: {str(exc).splitlines()[0]}") from None
    fm = FitnessMap(name, compiled, f"user function {name}(U, s)", cell)
    FITNESS_MAPS[name] = fm
    return fm


def resolve_fitness_map(fitness: Any, owner: str) -> FitnessMap:
    """The :class:`FitnessMap` named by ``fitness`` (a name in :data:`FITNESS_MAPS` or a map)."""
    if isinstance(fitness, FitnessMap):
        return fitness
    if isinstance(fitness, str) and fitness in FITNESS_MAPS:
        return FITNESS_MAPS[fitness]
    raise ValidationError(
        f"The 'fitness' parameter of {owner} must be one of {', '.join(repr(k) for k in FITNESS_MAPS)} "
        f"or a map made with sd.fitness.fitness_map. Got {fitness!r}."
    )


# ---------------------------------------------------------------------------------------------
# Genotype landscapes: U(g) = -log W(g) for g in {0..k-1}^L
# ---------------------------------------------------------------------------------------------
#: name -> GenotypeLandscape subclass, for specs
GENOTYPE_LANDSCAPES: dict[str, type] = {}


def _register(cls: type) -> type:
    GENOTYPE_LANDSCAPES[cls.__name__] = cls
    return cls


class GenotypeLandscape:
    """Fitness of discrete genotypes: L sites (``dim``), ``n_alleles`` alleles per site.

    Has the same compiled face as a :class:`~stochdyn.landscapes.Landscape` (``compiled``,
    ``theta``, ``dim``, ``value``) with energy :math:`U(g) = -\\log W(g)`, but no gradient, so only
    the population-genetic integrators accept it.
    """

    _block: ClassVar[Any] = None
    discrete: ClassVar[bool] = True

    def __init__(self, n_sites: int, n_alleles: int, theta: np.ndarray, params: dict[str, Any]):
        self.dim = int(n_sites)
        self.n_alleles = int(n_alleles)
        th = np.ascontiguousarray(theta, dtype=np.float64).ravel()
        th.setflags(write=False)
        self.theta = th
        self._params = params

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def compiled(self):
        """The compiled block function (compiled, or loaded from the disk cache, on first use)."""
        return type(self)._block.get()

    @property
    def compiled_value(self):
        """The block function evolution kernels call: the same (it writes a zero gradient, at no cost)."""
        return self.compiled

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.name}
        for k, v in self._params.items():
            out[k] = v.tolist() if isinstance(v, np.ndarray) else v
        return out

    def __repr__(self) -> str:
        return f"{self.name}(n_sites={self.dim}, n_alleles={self.n_alleles})"

    def check_genotypes(self, g: Any, name: str = "x0", owner: str = "simulate") -> np.ndarray:
        """Validate genotypes: integers in ``0 .. n_alleles-1``, last axis the L sites; return floats."""
        arr = np.asarray(g, dtype=np.float64)
        if arr.ndim == 0 or arr.shape[-1] != self.dim:
            raise ValidationError(f"The '{name}' parameter of {owner} must have {self.dim} sites on its last axis. Got shape {arr.shape}.")
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)) or np.any(arr < 0) or np.any(arr >= self.n_alleles):
            raise ValidationError(
                f"The '{name}' parameter of {owner} must hold allele indices 0..{self.n_alleles - 1} of {self.name}. Got {arr!r}."
            )
        return np.ascontiguousarray(arr)

    def value(self, g: Any) -> np.ndarray:
        """U(g) = -log W(g) for genotypes of shape ``(..., n_sites)``."""
        arr = self.check_genotypes(g, "g", self.name)
        pts = np.ascontiguousarray(arr.reshape(-1, self.dim))
        grad = np.empty_like(pts)
        val = np.empty(pts.shape[0])
        eval_block(self.compiled, self.theta, pts, grad, val)
        return val.reshape(arr.shape[:-1])

    def fitness(self, g: Any) -> np.ndarray:
        """W(g) for genotypes of shape ``(..., n_sites)``."""
        return np.exp(-self.value(g))

    def all_genotypes(self) -> np.ndarray:
        """Every genotype, shape ``(n_alleles**n_sites, n_sites)`` (for exact enumeration; small L only)."""
        if self.n_alleles ** self.dim > 2**20:
            raise ValidationError(f"{self.name} has {self.n_alleles}^{self.dim} genotypes: too many to enumerate.")
        grids = np.meshgrid(*[np.arange(self.n_alleles)] * self.dim, indexing="ij")
        return np.stack([gr.ravel() for gr in grids], axis=-1).astype(np.float64)


def _effects(effects: Any, owner: str) -> np.ndarray:
    e = check_array("effects", effects, owner, ndim=2, min_size=2)
    if e.shape[1] < 2:
        raise ValidationError(f"The 'effects' parameter of {owner} must have shape (n_sites, n_alleles >= 2). Got shape {e.shape}.")
    return e


@njit(inline="always", cache=True)
def _additive_row(x, g, th):
    L = x.shape[0]
    k = int(th[0])
    w = 1.0
    for i in range(L):
        w += th[1 + i * k + int(x[i])]
        g[i] = 0.0
    return -np.log(w) if w > 0.0 else np.inf


@lazy_cfunc
def _additive_block(xp, gp, vp, n, d, tp, nt):
    x = carray(xp, (n, d))
    g = carray(gp, (n, d))
    v = carray(vp, (n,))
    th = carray(tp, (nt,))
    for r in range(n):
        v[r] = _additive_row(x[r], g[r], th)


@_register
class AdditiveFitness(GenotypeLandscape):
    r"""Additive fitness, :math:`W(g) = 1 + \sum_i e_{i, g_i}`.

    Parameters
    ----------
    effects : array (n_sites, n_alleles)
        Effect :math:`e_{i,a}` of allele a at site i (usually :math:`e_{i,0} = 0`). Every genotype
        must have W > 0: ``1 + sum_i min_a e[i, a] > 0``, checked here.
    """

    _block = _additive_block

    def __init__(self, effects: Any):
        e = _effects(effects, "AdditiveFitness")
        wmin = 1.0 + e.min(axis=1).sum()
        if wmin <= 0.0:
            raise ValidationError(
                f"AdditiveFitness must be positive for every genotype, but the worst genotype has W = {wmin:g} "
                "(1 + sum of the smallest effect per site): fitness cannot be negative or zero."
            )
        super().__init__(e.shape[0], e.shape[1], np.concatenate([[e.shape[1]], e.ravel()]), {"effects": e})


@njit(inline="always", cache=True)
def _multiplicative_row(x, g, th):
    L = x.shape[0]
    k = int(th[0])
    u = 0.0
    for i in range(L):
        u -= np.log1p(th[1 + i * k + int(x[i])])
        g[i] = 0.0
    return u


@lazy_cfunc
def _multiplicative_block(xp, gp, vp, n, d, tp, nt):
    x = carray(xp, (n, d))
    g = carray(gp, (n, d))
    v = carray(vp, (n,))
    th = carray(tp, (nt,))
    for r in range(n):
        v[r] = _multiplicative_row(x[r], g[r], th)


@_register
class MultiplicativeFitness(GenotypeLandscape):
    r"""Multiplicative fitness, :math:`W(g) = \prod_i (1 + e_{i, g_i})`, i.e. :math:`U(g) = -\sum_i \log(1+e_{i,g_i})`.

    Parameters
    ----------
    effects : array (n_sites, n_alleles)
        Every entry > -1 (each factor positive). With one site and two alleles, ``effects=[[0, s]]``
        gives a mutant of relative fitness r = 1 + s.
    """

    _block = _multiplicative_block

    def __init__(self, effects: Any):
        e = _effects(effects, "MultiplicativeFitness")
        if np.any(e <= -1.0):
            raise ValidationError(
                f"The 'effects' parameter of MultiplicativeFitness must have every entry > -1 (each factor 1 + e "
                f"positive): fitness cannot be negative or zero. Got {e!r}."
            )
        super().__init__(e.shape[0], e.shape[1], np.concatenate([[e.shape[1]], e.ravel()]), {"effects": e})


@njit(inline="always", cache=True)
def _nk_row(x, g, th):
    L = x.shape[0]
    K = int(th[0])
    k = int(th[1])
    size = 1
    for j in range(K + 1):
        size *= k
    s = 0.0
    for i in range(L):
        idx = 0
        for j in range(K + 1):
            idx = idx * k + int(x[(i + j) % L])
        s += th[2 + i * size + idx]
        g[i] = 0.0
    return -np.log(s / L)


@lazy_cfunc
def _nk_block(xp, gp, vp, n, d, tp, nt):
    x = carray(xp, (n, d))
    g = carray(gp, (n, d))
    v = carray(vp, (n,))
    th = carray(tp, (nt,))
    for r in range(n):
        v[r] = _nk_row(x[r], g[r], th)


@_register
class NKFitness(GenotypeLandscape):
    r"""Kauffman's NK landscape (Kauffman & Weinberger 1989, J. Theor. Biol. 141, 211).

    :math:`W(g) = \frac1L \sum_{i=0}^{L-1} f_i(g_i, g_{i+1}, \dots, g_{i+K})` (indices mod L), each
    contribution table :math:`f_i` drawn i.i.d. uniform on (0, 1) from ``seed`` at construction.
    K = 0 is smooth (additive); K = L-1 is a random landscape.

    Parameters
    ----------
    n_sites : int
        L >= 1.
    k_epistasis : int
        K, 0 <= K < L: each site interacts with the next K sites.
    n_alleles : int
        Alleles per site (>= 2, default 2).
    seed : int
        Seed of the contribution tables (default 0).
    """

    _block = _nk_block

    def __init__(self, n_sites: int, k_epistasis: int, n_alleles: int = 2, seed: int = 0):
        owner = "NKFitness"
        L = check_int("n_sites", n_sites, owner, ge=1)
        K = check_int("k_epistasis", k_epistasis, owner, ge=0, lt=L)
        k = check_int("n_alleles", n_alleles, owner, ge=2)
        seed = check_int("seed", seed, owner, ge=0)
        if k ** (K + 1) * L > 2**24:
            raise ValidationError(f"NKFitness tables would have {k ** (K + 1) * L} entries: lower k_epistasis or n_alleles.")
        tables = np.random.default_rng(seed).uniform(size=(L, k ** (K + 1)))
        tables = np.where(tables == 0.0, np.finfo(float).tiny, tables)
        self.tables = tables
        super().__init__(L, k, np.concatenate([[K, k], tables.ravel()]),
                         {"n_sites": L, "k_epistasis": K, "n_alleles": k, "seed": seed})


def genotype_landscape_from_dict(spec: dict[str, Any]) -> GenotypeLandscape:
    """Rebuild a genotype landscape from :meth:`GenotypeLandscape.to_dict` output (or a spec table)."""
    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in GENOTYPE_LANDSCAPES:
        raise ValidationError(f"Unknown genotype landscape type {kind!r}; known types: {', '.join(sorted(GENOTYPE_LANDSCAPES))}.")
    try:
        return GENOTYPE_LANDSCAPES[kind](**spec)
    except TypeError as exc:
        raise ValidationError(f"Bad parameters for genotype landscape {kind}: {exc}") from None


def _register_spec_table() -> None:
    from .spec import TARGET_BUILDERS

    TARGET_BUILDERS.setdefault("genotypes", genotype_landscape_from_dict)


_register_spec_table()
