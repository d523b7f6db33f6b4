"""Built-in stopping rules, their combination with ``|``, and the compiled form kernels call.

Each rule is a small validated object with four faces:

* ``to_dict()`` — a JSON-able description (Dataset attributes, specs, :func:`rule_from_dict`);
* ``check_target(integrator, target)`` — a clear :class:`~stochdyn.ValidationError` when the rule
  cannot apply to that run;
* ``holds(x, energy)`` — the plain-NumPy reference evaluation (tests compare the compiled one with it);
* a part of the compiled program (``compile``), evaluated by its own cached function
  (:mod:`stochdyn.stopping._compiled`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .._validation import ValidationError, check_array, check_int, check_real
from . import _compiled as _c

__all__ = ["Rule", "Fixation", "Region", "Ball", "Basin", "EnergyBelow", "AnyOf", "CompiledRule", "rule_from_dict",
           "RULES", "NO_RULE_ARGS"]

#: rule type name -> class, for specs and for rebuilding a rule from Dataset attributes
RULES: dict[str, type] = {}


def _register(cls: type) -> type:
    RULES[cls.__name__] = cls
    return cls


def as_rows(x: Any) -> np.ndarray:
    """States as ``(R, n, d)``: a point per replica ``(R, d)`` becomes ``(R, 1, d)``."""
    arr = np.ascontiguousarray(x, dtype=np.float64)
    if arr.ndim == 2:
        return arr.reshape(arr.shape[0], 1, arr.shape[1])
    if arr.ndim != 3:
        raise ValidationError(f"Stopping rules evaluate states of shape (replicas, dim) or (replicas, n, dim). "
                              f"Got shape {arr.shape}.")
    return arr


def _mean_rows(rows: np.ndarray) -> np.ndarray:
    """Population means ``(R, d)`` summed in row order, as the compiled rules sum (bit-identical)."""
    return np.cumsum(rows, axis=1)[:, -1, :] / rows.shape[1]


def _energies(energy: Any, R: int) -> np.ndarray:
    if energy is None:
        return np.full(R, np.nan)
    return np.array(np.broadcast_to(np.asarray(energy, dtype=np.float64), (R,)), order="C")  # writable: one kernel type


class Rule:
    """Base class of stopping rules; combine rules with ``rule_a | rule_b``.

    A replica stops at the first step after which its rule holds (see :mod:`stochdyn.stopping`).
    """

    #: does the rule read the scalar ``energy`` (so kernels must provide it every step)?
    needs_energy: ClassVar[bool] = False

    # -- description ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-able description ``{"type": name, **parameters}``."""
        raise NotImplementedError

    @property
    def label(self) -> str:
        """A short token without spaces naming the rule (CF ``flag_meanings`` of ``stop_rule``)."""
        return type(self).__name__

    @property
    def rules(self) -> tuple["Rule", ...]:
        """The rules of a combination in order (a single rule: itself)."""
        return (self,)

    def __or__(self, other: Any) -> "AnyOf":
        if not isinstance(other, Rule):
            return NotImplemented
        return AnyOf(self, other)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and json.dumps(other.to_dict()) == json.dumps(self.to_dict())  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "type")
        return f"{type(self).__name__}({args})"

    # -- applicability -------------------------------------------------------------------------
    def check_target(self, integrator: Any, target: Any) -> None:
        """Raise ValidationError if the rule cannot apply to ``integrator`` running on ``target``."""

    # -- evaluation ----------------------------------------------------------------------------
    def holds(self, x: Any, energy: Any = None, target: Any = None) -> np.ndarray:
        """Plain-NumPy reference: does the rule hold for each replica? ``x`` is ``(R, d)`` or
        ``(R, n, d)``, ``energy`` ``(R,)``, ``target`` the run's target (for :class:`Basin` without its own
        landscape); returns bool ``(R,)``."""
        raise NotImplementedError

    def reference(self, x: Any, energy: Any = None, target: Any = None) -> np.ndarray:
        """Plain-NumPy reference of the compiled result: 0 if no rule holds, else 1 + the index of
        the first rule (in :attr:`rules` order) that holds; int64 ``(R,)``."""
        rows = as_rows(x)
        e = _energies(energy, rows.shape[0])
        code = np.zeros(rows.shape[0], dtype=np.int64)
        for k, r in enumerate(self.rules):
            hit = np.asarray(r.holds(rows, e, target), dtype=bool) & (code == 0)
            code[hit] = k + 1
        return code

    def _part(self, target: Any, aux: list[int]) -> tuple[int, np.ndarray, int]:
        """``(opcode, parameters, aux index)`` of this rule in a program (``aux`` may be appended to)."""
        raise NotImplementedError

    def _work(self, d: int) -> int:
        """Doubles of scratch the rule needs for states of dimension ``d``."""
        return 0

    def compile(self, target: Any = None, dim: int | None = None) -> "CompiledRule":
        """The compiled form: the function kernels call (the rule's own for a single built-in rule, else
        the interpreter; compiled on first use and cached on disk), this rule's program and addresses.

        ``target`` is the run's target (needed by :class:`Basin` without its own landscape);
        ``dim`` the state dimension (default ``target.dim``).
        """
        aux: list[int] = []
        parts = []
        for r in self.rules:
            op, params, ai = r._part(target, aux)
            if op == _c.OP_USER:
                fi = ai  # the user rule's own function
            else:
                aux.append(int(_c.RULE_FUNCS[op].get().address))
                fi = len(aux) - 1
            parts.append((op, params, ai, fi))
        d = int(dim if dim is not None else getattr(target, "dim", 1))
        n_work = max([1] + [r._work(d) for r in self.rules])
        # a single built-in rule is its own function; a combination or a user rule goes through the interpreter
        single = len(parts) == 1 and parts[0][0] != _c.OP_USER
        fn = _c.RULE_FUNCS[parts[0][0]].get() if single else _c.interpreter.get()
        return CompiledRule(self, fn, _c.pack_program(parts, self.needs_energy),
                            np.ascontiguousarray(aux, dtype=np.int64), n_work)


@dataclass
class CompiledRule:
    """What a kernel receives for ``until=rule``: the function (of signature
    :data:`~stochdyn.stopping.RULE_SIG`: a single built-in rule's own, or the interpreter), the program
    ``theta``, the addresses ``aux`` and the scratch size ``n_work`` (doubles per unit of parallel work)."""

    rule: Rule
    fn: Any
    theta: np.ndarray
    aux: np.ndarray
    n_work: int

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(r.label for r in self.rule.rules)

    def work(self, units: int, extra: int = 0) -> np.ndarray:
        """Zeroed scratch, one row per unit of parallel work: ``extra`` doubles for the kernel (e.g. a
        point gathered from a columns layout) then the rule's ``n_work``."""
        return np.zeros((max(1, int(units)), int(extra) + self.n_work))

    def kernel_args(self, state: Any, units: int, extra: int = 0) -> tuple:
        """The six trailing kernel arguments of the contract (docs/design.md, "Stopping rules"):
        ``(fn, theta, aux, work, stop_step, stop_rule)`` for a State made by ``simulate(until=...)``."""
        return (self.fn, self.theta, self.aux, self.work(units, extra), state.arrays["stop_step"],
                state.arrays["stop_rule"])

    def evaluate(self, x: Any, energy: Any = None) -> np.ndarray:
        """Compiled evaluation for every replica: 0, or 1 + the index of the rule that holds; int64 ``(R,)``."""
        rows = as_rows(x)
        R = rows.shape[0]
        out = np.zeros(R, dtype=np.int64)
        if R:
            _c.evaluate_rows(self.fn, self.theta, self.aux, rows, _energies(energy, R), self.work(R), out)
        return out


#: the six trailing kernel arguments when there is no rule: ``until_fn=None`` (Numba prunes every branch
#: that uses it) and size-1 placeholders of the types the arguments have with a rule
NO_RULE_ARGS = (None, np.zeros(1), np.zeros(1, dtype=np.int64), np.zeros((1, 1)), np.full(1, -1, dtype=np.int64),
                np.full(1, -1, dtype=np.int64))


# -------------------------------------------------------------------------------------------------
# helpers
# -------------------------------------------------------------------------------------------------
def _family(integrator: Any) -> str:
    return getattr(integrator, "family", "")


def _state_dim(integrator: Any, target: Any) -> int:
    return int(integrator.dim(target)) if integrator is not None else int(target.dim)


def _is_genotype(target: Any) -> bool:
    from ..fitness import GenotypeLandscape

    return isinstance(target, GenotypeLandscape)


def _fmt(v: float) -> str:
    return f"{v:g}"


# -------------------------------------------------------------------------------------------------
# the rules
# -------------------------------------------------------------------------------------------------
@_register
class Fixation(Rule):
    r"""The population is monomorphic: every individual carries the same allele at every site.

    For :class:`~stochdyn.WrightFisher` and :class:`~stochdyn.Moran` on genotypes
    (:mod:`stochdyn.fitness`). Without mutation a monomorphic population stays so for ever, so this is
    absorption; for one biallelic site it is "the mutant fixed or was lost" — which one is read from
    the final ``allele_frequency``, or asked for directly with
    ``Fixation(allele=1) | Fixation(allele=0)`` (then ``stop_rule`` says which).

    Parameters
    ----------
    allele : int, optional
        Stop only when *this* allele is fixed at every site (default: any allele, site by site).
    """

    def __init__(self, allele: int | None = None):
        self.allele = check_int("allele", allele, "Fixation", ge=0, allow_none=True)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "Fixation"} if self.allele is None else {"type": "Fixation", "allele": self.allele}

    @property
    def label(self) -> str:
        return "fixation" if self.allele is None else f"fixation_of_allele_{self.allele}"

    def __str__(self) -> str:
        return "population monomorphic" if self.allele is None else f"allele {self.allele} fixed at every site"

    def check_target(self, integrator: Any, target: Any) -> None:
        if _family(integrator) != "popgen":
            raise ValidationError(
                f"Fixation() applies to the population-genetic integrators WrightFisher and Moran on genotypes; "
                f"{type(integrator).__name__} has no population to fix. Use Region, Ball, Basin or EnergyBelow.")
        if not _is_genotype(target):
            raise ValidationError(
                f"Fixation() needs genotypes (a genotype landscape from sd.fitness, e.g. MultiplicativeFitness): on the "
                f"continuous-trait landscape {type(target).__name__} no two individuals are ever exactly equal once they "
                "mutate, so a population never fixes. Use Region(...) or Ball(...) on the population mean instead.")
        if self.allele is not None and self.allele >= target.n_alleles:
            raise ValidationError(f"The 'allele' parameter of Fixation must be < n_alleles = {target.n_alleles} of "
                                  f"{target.name}. Got {self.allele}.")

    def holds(self, x: Any, energy: Any = None, target: Any = None) -> np.ndarray:
        rows = as_rows(x)
        mono = np.all(rows == rows[:, :1, :], axis=(1, 2))
        if self.allele is not None:
            mono &= np.all(rows[:, 0, :] == self.allele, axis=1)
        return mono

    def _part(self, target, aux):
        return _c.OP_FIXATION, np.array([-1.0 if self.allele is None else float(self.allele)]), -1


@_register
class Region(Rule):
    r"""A half-space of one coordinate: :math:`x_i \ge a` (``above=a``) or :math:`x_i \le b` (``below=b``).

    On a population the coordinate is the population mean :math:`\bar x_i` (for genotypes: the mean
    allele index). NaN never lies in a region.

    Parameters
    ----------
    coordinate : int
        i >= 0.
    above, below : float
        Give exactly one.
    """

    def __init__(self, coordinate: int = 0, *, above: float | None = None, below: float | None = None):
        owner = "Region"
        self.coordinate = check_int("coordinate", coordinate, owner, ge=0)
        if (above is None) == (below is None):
            raise ValidationError("Region needs exactly one of 'above' or 'below', e.g. Region(coordinate=0, above=1.0).")
        self.above = check_real("above", above, owner, allow_none=True)
        self.below = check_real("below", below, owner, allow_none=True)

    def to_dict(self) -> dict[str, Any]:
        side = {"above": self.above} if self.above is not None else {"below": self.below}
        return {"type": "Region", "coordinate": self.coordinate, **side}

    @property
    def label(self) -> str:
        if self.above is not None:
            return f"x{self.coordinate}_above_{_fmt(self.above)}"
        return f"x{self.coordinate}_below_{_fmt(self.below)}"  # type: ignore[arg-type]

    def __str__(self) -> str:
        if self.above is not None:
            return f"x[{self.coordinate}] >= {_fmt(self.above)}"
        return f"x[{self.coordinate}] <= {_fmt(self.below)}"  # type: ignore[arg-type]

    def check_target(self, integrator: Any, target: Any) -> None:
        d = _state_dim(integrator, target)
        if self.coordinate >= d:
            raise ValidationError(f"The 'coordinate' parameter of Region must be < the state dimension {d} of "
                                  f"{type(integrator).__name__} on {target.name}. Got {self.coordinate}.")

    def holds(self, x: Any, energy: Any = None, target: Any = None) -> np.ndarray:
        v = _mean_rows(as_rows(x))[:, self.coordinate]
        return v >= self.above if self.above is not None else v <= self.below

    def _part(self, target, aux):
        up = self.above is not None
        return _c.OP_REGION, np.array([self.coordinate, 1.0 if up else 0.0, self.above if up else self.below]), -1


@_register
class Ball(Rule):
    r"""A closed ball :math:`|x - c| \le r` (on a population: of the population mean).

    Parameters
    ----------
    center : array of shape (dim,)
    radius : float
        r > 0.
    """

    def __init__(self, center: Any, radius: float):
        self.center = check_array("center", center, "Ball", ndim=1, min_size=1)
        self.radius = check_real("radius", radius, "Ball", gt=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "Ball", "center": self.center.tolist(), "radius": self.radius}

    def __str__(self) -> str:
        return f"|x - {self.center.tolist()}| <= {_fmt(self.radius)}"

    def check_target(self, integrator: Any, target: Any) -> None:
        d = _state_dim(integrator, target)
        if self.center.size != d:
            raise ValidationError(f"The 'center' parameter of Ball must have the state dimension {d}. "
                                  f"Got {self.center.size} entries.")

    def holds(self, x: Any, energy: Any = None, target: Any = None) -> np.ndarray:
        c = _mean_rows(as_rows(x)) - self.center
        s = np.zeros(c.shape[0])
        for j in range(c.shape[1]):  # in coordinate order, as compiled
            s += c[:, j] * c[:, j]
        return s <= self.radius * self.radius

    def _part(self, target, aux):
        return _c.OP_BALL, np.concatenate([[self.radius * self.radius], self.center]), -1


@_register
class EnergyBelow(Rule):
    r"""The family's energy is below a threshold: :math:`E < u` — the time to target.

    What E is (documented in :mod:`stochdyn.stopping`): U(x) for Langevin and for SGD on a landscape,
    the full-batch loss for SGD on a finite-sum problem, the lowest U evaluated so far for the
    evolution strategies (their ``best_energy``), the lowest U in the population for
    Wright–Fisher/Moran and the genetic algorithm. In every case the first step at which E < u is the
    first step at which the best value so far is < u, so "current" and "best so far" give the same
    stopping time.

    Parameters
    ----------
    u : float
        The target value.
    """

    needs_energy = True

    def __init__(self, u: float):
        self.u = check_real("u", u, "EnergyBelow")

    def to_dict(self) -> dict[str, Any]:
        return {"type": "EnergyBelow", "u": self.u}

    @property
    def label(self) -> str:
        return f"energy_below_{_fmt(self.u)}"

    def __str__(self) -> str:
        return f"energy < {_fmt(self.u)}"

    def holds(self, x: Any, energy: Any = None, target: Any = None) -> np.ndarray:
        return _energies(energy, as_rows(x).shape[0]) < self.u

    def _part(self, target, aux):
        return _c.OP_ENERGY, np.array([self.u]), -1


@_register
class Basin(Rule):
    r"""The basin of attraction of a minimum: gradient flow :math:`\dot y = -\nabla U(y)` from the point
    (on a population: from the population mean) ends at ``minimum``.

    Evaluated cheaply in two stages. (1) A ball :math:`|x - m| \le r` around the minimum on which the
    radial derivative :math:`(x-m)\cdot\nabla U(x)` is positive lies inside the basin (the flow
    shrinks :math:`|y-m|` there and has no other critical point); a point in it needs no flow. (2)
    Otherwise the flow is followed by gradient descent with Armijo backtracking, step at most
    :math:`h = 1/(2\lambda_{\max})` (:math:`\lambda_{\max}` the largest curvature at the minimum), until it
    enters that ball (in the basin), enters the ball of one of the ``others`` minima (not in the basin),
    stalls at a critical point (:math:`|\nabla U| <` ``gtol``: not in the basin), or runs out of
    ``max_iter`` steps (reported as not in the basin). Give the ``others`` minima: a replica that sits
    in another basin is then rejected after a few steps instead of a converged flow, which is what
    makes checking this rule after every step affordable. Descent approximates the flow: decisions can
    differ from the exact flow only within about one step length of a basin boundary.

    Parameters
    ----------
    minimum : array of shape (dim,)
        A strict local minimum of the landscape (gradient ~0, positive-definite Hessian; checked).
    landscape : Landscape, optional
        The landscape of the flow (default: the run's target).
    radius : float, optional
        Radius r of the pre-check ball. Default: half the largest radius on which the radial test
        passes at 32 radii x 514 directions (seeded), capped at half the distance to the nearest of
        ``others``. A given radius is checked the same way.
    others : array of shape (k, dim), optional
        Other minima; the flow stops as soon as it enters one of their balls (found the same way).
    gtol : float
        Gradient norm below which the flow has stalled (default 1e-8).
    max_iter : int
        Descent steps at most (default 10000).
    """

    def __init__(self, minimum: Any, landscape: Any = None, *, radius: float | None = None, others: Any = None,
                 gtol: float = 1e-8, max_iter: int = 10_000):
        owner = "Basin"
        self.minimum = check_array("minimum", minimum, owner, ndim=1, min_size=1)
        d = self.minimum.size
        self.others = (np.zeros((0, d)) if others is None
                       else check_array("others", np.atleast_2d(others), owner, ndim=2, shape=(None, d)))
        self.radius = check_real("radius", radius, owner, gt=0.0, allow_none=True)
        self.gtol = check_real("gtol", gtol, owner, gt=0.0)
        self.max_iter = check_int("max_iter", max_iter, owner, ge=1)
        self.landscape = landscape
        self._geometry: dict[Any, tuple[float, np.ndarray, float]] = {}
        if landscape is not None:
            self._check_landscape(landscape)
            self.geometry(landscape)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "Basin", "minimum": self.minimum.tolist()}
        if self.landscape is not None:
            out["landscape"] = self.landscape.to_dict()
        if self.radius is not None:
            out["radius"] = self.radius
        if self.others.size:
            out["others"] = self.others.tolist()
        out.update(gtol=self.gtol, max_iter=self.max_iter)
        return out

    @property
    def label(self) -> str:
        return "basin_of_" + "_".join(_fmt(v) for v in self.minimum)

    def __str__(self) -> str:
        return f"in the basin of the minimum {self.minimum.tolist()}"

    def __reduce__(self):
        return (rule_from_dict, (self.to_dict(),))

    def _check_landscape(self, land: Any) -> None:
        from ..landscapes.base import Landscape

        if not isinstance(land, Landscape):
            raise ValidationError(f"Basin needs a landscape with a gradient (a stochdyn.landscapes.Landscape) for its "
                                  f"gradient flow. Got {type(land).__name__}.")
        if land.dim != self.minimum.size:
            raise ValidationError(f"The 'minimum' parameter of Basin must have the landscape's dimension {land.dim}. "
                                  f"Got {self.minimum.size} entries.")

    def geometry(self, land: Any) -> tuple[float, np.ndarray, float]:
        """``(r^2, other balls (k, d+1): centre and r^2, h_max)`` on ``land``, computed once and checked."""
        key = (land.name, land.dim, land.theta.tobytes())
        if key not in self._geometry:
            self._geometry[key] = self._compute_geometry(land)
        return self._geometry[key]

    def _compute_geometry(self, land: Any) -> tuple[float, np.ndarray, float]:
        lam = self._curvatures(land, self.minimum, "minimum")
        h_max = 0.5 / float(lam.max())
        cap = np.inf
        if self.others.size:
            gaps = np.linalg.norm(self.others - self.minimum, axis=1)
            if np.any(gaps == 0):
                raise ValidationError("The 'others' minima of Basin must differ from 'minimum'.")
            cap = 0.5 * float(gaps.min())
        if self.radius is not None:
            if not _radial_test(land, self.minimum, self.radius):
                raise ValidationError(
                    f"The 'radius' parameter of Basin ({self.radius:g}) is too large: on the ball around "
                    f"{self.minimum.tolist()} the gradient does not point away from the minimum everywhere, so the "
                    "ball is not known to lie in the basin. Leave radius=None to find one.")
            r = min(self.radius, cap)
        else:
            r = min(0.5 * _largest_radial_radius(land, self.minimum, lam), cap)
        balls = []
        pts = np.vstack([self.minimum[None], self.others])
        for o in self.others:
            gap = np.linalg.norm(pts - o, axis=1)
            ro = min(0.5 * _largest_radial_radius(land, o, self._curvatures(land, o, "others")), 0.5 * float(gap[gap > 0].min()))
            balls.append(np.concatenate([o, [ro * ro]]))
        return r * r, np.array(balls).reshape(-1, self.minimum.size + 1), h_max

    def _curvatures(self, land: Any, m: np.ndarray, name: str) -> np.ndarray:
        g = land.grad(m)
        H = land.hessian(m)
        lam = np.linalg.eigvalsh(0.5 * (H + H.T))
        scale = max(1.0, float(np.abs(lam).max()) * max(1.0, float(np.abs(m).max())))
        if not np.all(np.isfinite(g)) or np.linalg.norm(g) > 1e-6 * scale or not lam.min() > 0:
            raise ValidationError(
                f"The '{name}' point {m.tolist()} of Basin is not a strict minimum of {land.name}: gradient "
                f"{g.tolist()}, Hessian eigenvalues {lam.tolist()} (need gradient ~0 and all eigenvalues > 0).")
        return lam

    def check_target(self, integrator: Any, target: Any) -> None:
        land = self.landscape if self.landscape is not None else target
        if self.landscape is None and _is_genotype(target):
            raise ValidationError("Basin() needs a continuous landscape with a gradient; genotypes have none. "
                                  "Use Fixation() or EnergyBelow() on genotypes.")
        self._check_landscape(land)
        d = _state_dim(integrator, target)
        if d != self.minimum.size:
            raise ValidationError(f"The 'minimum' parameter of Basin must have the state dimension {d}. "
                                  f"Got {self.minimum.size} entries.")
        self.geometry(land)

    def _land(self, target: Any) -> Any:
        land = self.landscape if self.landscape is not None else target
        if land is None:
            raise ValidationError("Basin() without a landscape takes the run's target: compile it with the target.")
        self._check_landscape(land)
        return land

    def _work(self, d: int) -> int:
        return 4 * d + 2

    def _part(self, target, aux):
        land = self._land(target)
        r2, balls, h_max = self.geometry(land)
        aux.append(int(land.compiled.address))
        lt = np.asarray(land.theta, dtype=np.float64)
        params = np.concatenate([[r2, self.gtol, self.max_iter, h_max, balls.shape[0]], self.minimum, balls.ravel(),
                                 [lt.size], lt])
        return _c.OP_BASIN, params, len(aux) - 1

    def holds(self, x: Any, energy: Any = None, target: Any = None) -> np.ndarray:
        land = self._land(target)
        r2, balls, h_max = self.geometry(land)
        pts = _mean_rows(as_rows(x))
        return np.array([_flow_in_basin(land, p, self.minimum, r2, balls, h_max, self.gtol, self.max_iter)
                         for p in pts], dtype=bool)


def _flow_in_basin(land, y, m, r2, balls, h_max, gtol, max_iter) -> bool:
    """NumPy reference of the compiled flow (same steps, same order of tests)."""
    y = np.array(y, dtype=np.float64)
    if not np.all(np.isfinite(y)):
        return False
    if np.sum((y - m) ** 2) <= r2:
        return True
    v, g = land.value_and_grad(y)
    v = float(v)
    h = h_max
    for it in range(max_iter + 1):
        if np.sum((y - m) ** 2) <= r2:
            return True
        for b in balls:
            if np.sum((y - b[:-1]) ** 2) <= b[-1]:
                return False
        gg = float(np.sum(g * g))
        if not gg > gtol * gtol or it == max_iter:
            return False
        while True:
            yt = y - h * g
            vt, gt = land.value_and_grad(yt)
            if float(vt) <= v - 0.5 * h * gg:
                break
            h *= 0.5
            if h < 1e-12 * h_max:
                return False
        y, g, v = yt, gt, float(vt)
        h = min(2.0 * h, h_max)
    return False


_N_RADII = 32


def _directions(d: int) -> np.ndarray:
    u = np.random.default_rng(20260512).normal(size=(512, d))
    u = np.vstack([u / np.linalg.norm(u, axis=1, keepdims=True), np.eye(d), -np.eye(d)])
    return u


def _radial_test(land: Any, m: np.ndarray, r: float) -> bool:
    """Is (x - m) . grad U(x) > 0 at 32 radii in (0, r] along 512 + 2d directions?"""
    dirs = _directions(m.size)
    radii = r * np.arange(1, _N_RADII + 1) / _N_RADII
    off = (radii[:, None, None] * dirs[None]).reshape(-1, m.size)
    g = land.grad(m + off)
    return bool(np.all(np.sum(off * g, axis=1) > 0))


def _largest_radial_radius(land: Any, m: np.ndarray, lam: np.ndarray) -> float:
    """The largest r = s 2^k (s = 1/sqrt(lambda_max), k = -20..20) passing :func:`_radial_test`."""
    s = 1.0 / np.sqrt(float(lam.max()))
    best = 0.0
    for k in range(-20, 21):
        r = s * 2.0**k
        if _radial_test(land, m, r):
            best = r
        elif best > 0:
            break
    if best == 0.0:
        raise ValidationError(f"Basin: no ball around {m.tolist()} passed the radial test on {land.name}; "
                              "is it a strict minimum?")
    return best


@_register
class AnyOf(Rule):
    """Stop when any of the rules holds (``rule_a | rule_b``); ``stop_rule`` records which (the first
    that holds, in order). Combinations are flattened, so ``a | b | c`` is one rule of three parts."""

    def __init__(self, *rules: Rule):
        flat: list[Rule] = []
        for r in rules:
            if not isinstance(r, Rule):
                raise ValidationError(f"AnyOf combines stopping rules (sd.stopping.*). Got {type(r).__name__}.")
            flat.extend(r.rules)
        if not flat:
            raise ValidationError("AnyOf needs at least one rule.")
        self._rules = tuple(flat)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    @property
    def needs_energy(self) -> bool:  # type: ignore[override]
        return any(r.needs_energy for r in self._rules)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "AnyOf", "rules": [r.to_dict() for r in self._rules]}

    @property
    def label(self) -> str:
        return "any_of"

    def __str__(self) -> str:
        return " | ".join(f"({r})" for r in self._rules)

    def __repr__(self) -> str:
        return " | ".join(repr(r) for r in self._rules)

    def check_target(self, integrator: Any, target: Any) -> None:
        for r in self._rules:
            r.check_target(integrator, target)

    def holds(self, x: Any, energy: Any = None, target: Any = None) -> np.ndarray:
        return self.reference(x, energy, target) > 0


def rule_from_dict(spec: Any) -> Rule:
    """Rebuild a rule from :meth:`Rule.to_dict` output or a spec table; a list is an :class:`AnyOf`."""
    if isinstance(spec, (list, tuple)):
        return AnyOf(*(rule_from_dict(s) for s in spec))
    if not isinstance(spec, dict):
        raise ValidationError(f"A stopping rule description must be a table with a 'type' key. Got {spec!r}.")
    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in RULES:
        raise ValidationError(f"Unknown stopping rule type {kind!r}; known types: {', '.join(sorted(RULES))}.")
    if kind == "AnyOf":
        return AnyOf(*(rule_from_dict(s) for s in spec.get("rules", [])))
    if kind == "Basin" and isinstance(spec.get("landscape"), dict):
        from ..landscapes.base import landscape_from_dict

        spec["landscape"] = landscape_from_dict(spec["landscape"])
    try:
        return RULES[kind](**spec)
    except TypeError as exc:
        raise ValidationError(f"Bad parameters for stopping rule {kind}: {exc}") from None
