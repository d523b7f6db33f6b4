"""What every integrator provides to the ensemble driver.

An integrator is a frozen dataclass of validated hyper-parameters plus the methods below. The
driver (:func:`stochdyn.simulate`) owns everything generic — validation of run arguments, random
streams, chunking, progress, recording, divergence reports and the Dataset — and asks the
integrator only for what is specific to its dynamics.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
import numpy.typing as npt

from .._repr import HTMLRepr
from .._validation import ValidationError, check_array

__all__ = ["Integrator", "Variable", "State", "INTEGRATORS", "register_integrator", "integrator_from_dict"]

#: class name -> Integrator subclass, for specs and for rebuilding runs from attributes
INTEGRATORS: dict[str, type["Integrator"]] = {}

_IntegratorType = TypeVar("_IntegratorType", bound=type["Integrator"])


def register_integrator(cls: _IntegratorType) -> _IntegratorType:
    """Class decorator: make an integrator available to specs under its class name (returns the
    class itself, so the decorated name keeps its own type)."""
    INTEGRATORS[cls.__name__] = cls
    return cls


def integrator_from_dict(spec: dict[str, Any]) -> "Integrator":
    """Build an integrator from ``{"type": name, **params}``; unknown names or keys are rejected clearly."""
    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in INTEGRATORS:
        raise ValidationError(f"Unknown integrator type {kind!r}; known types: {', '.join(sorted(INTEGRATORS))}.")
    cls = INTEGRATORS[kind]
    allowed = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in spec if k not in allowed]
    if unknown:
        raise ValidationError(f"Unknown key {unknown[0]!r} for integrator {kind}; allowed keys: {', '.join(allowed)}.")
    return cls(**spec)


@dataclass(frozen=True)
class Variable:
    """A recorded variable: dims after ``(replica, time)``, their sizes, and CF-style metadata."""

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    long_name: str
    units: str
    dtype: Any = np.float64


@dataclass
class State:
    """Per-replica dynamical state of an ensemble: every array has the replica axis first.

    ``arrays`` is what a checkpoint must keep (positions, velocities, generator words,
    divergence steps, ...); ``scratch`` holds buffers that can be rebuilt (gradients, energies).
    ``until`` is the compiled stopping rule of a run with ``until=`` (a
    :class:`~stochdyn.stopping.CompiledRule`, set by the driver), else None.
    """

    arrays: dict[str, npt.NDArray[Any]]
    scratch: dict[str, npt.NDArray[Any]] = dataclasses.field(default_factory=dict)
    step: int = 0
    until: Any = None

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        return self.arrays[name] if name in self.arrays else self.scratch[name]

    def until_args(self, units: int, extra: int = 0) -> tuple[Any, ...]:
        """The six trailing arguments of every kernel (docs/design.md, "Stopping rules"):
        ``until_fn, until_theta, until_aux, until_work, stop_step, stop_rule``. Without a rule
        ``until_fn`` is None (Numba prunes every branch that uses it: the kernel is the one of a run
        without rules) and the others are small placeholders. ``units`` rows of ``until_work``, one
        per unit of parallel work (a replica, or a block), each with ``extra`` doubles for the kernel."""
        if self.until is None:
            from ..stopping.rules import NO_RULE_ARGS

            return NO_RULE_ARGS
        return self.until.kernel_args(self, units, extra)


class Integrator(HTMLRepr):
    """Base class of all stochdyn integrators (see the module docstring); in a notebook, a table of
    its hyper-parameters (``_repr_html_``)."""

    #: "langevin", "sgd", "evolution" or "popgen"
    family: ClassVar[str] = ""
    #: long name and units of the ``time`` coordinate
    time_long_name: ClassVar[str] = "time"
    time_units: ClassVar[str] = "1"
    #: every concrete integrator is a frozen dataclass (declared here, set by ``@dataclass`` on the
    #: subclasses), so ``dataclasses.fields`` and ``dataclasses.replace`` accept any Integrator
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]
    #: scratch arrays that :meth:`record` reads and that hold a replica's results of its last step (not
    #: rebuilt by a kernel call): kept with the state of replicas a stopping rule has set aside
    record_scratch: ClassVar[tuple[str, ...]] = ()

    # -- description ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The integrator's class name (the algorithm's name)."""
        return type(self).__name__

    def params(self) -> dict[str, Any]:
        """Hyper-parameters as plain Python values (lists for arrays), for attrs and specs."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = _plain(v)
        return out

    def to_dict(self) -> dict[str, Any]:
        """``{"type": name, **params}`` without unset (None) parameters, as specs write it."""
        return {"type": self.name, **{k: v for k, v in self.params().items() if v is not None}}

    def time_of_step(self, steps: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.float64]:
        """The ``time`` coordinate of the given step numbers (default: the step itself)."""
        return np.asarray(steps, dtype=np.float64)

    # -- what the driver asks ----------------------------------------------------------------
    def check_target(self, target: Any) -> None:
        """Raise ValidationError if this integrator cannot run on ``target``."""
        raise NotImplementedError

    def check_run(self, target: Any, n_steps: int) -> None:
        """Raise ValidationError if this integrator cannot run ``n_steps`` steps on ``target``
        (e.g. a per-step schedule that is too short). Default: nothing to check."""

    def dim(self, target: Any) -> int:
        """Dimension of the state ``x`` on ``target``."""
        return int(target.dim)

    def prepare_x0(self, x0: Any, target: Any, n_replicas: int) -> npt.NDArray[np.float64]:
        """Validate ``x0`` (one point ``(dim,)`` or one per replica ``(n_replicas, dim)``; ``None`` is
        the origin) and return a fresh ``(n_replicas, dim)`` float array."""
        d = self.dim(target)
        if x0 is None:
            return np.zeros((n_replicas, d))
        arr = check_array("x0", x0, "simulate", ndim=(1, 2))
        if arr.ndim == 1:
            if arr.shape[0] != d:
                raise ValidationError(
                    f"The 'x0' parameter of simulate must have the landscape's dimension {d}: shape ({d},) or "
                    f"({n_replicas}, {d}). Got shape {arr.shape}."
                )
            return np.array(np.broadcast_to(arr, (n_replicas, d)), order="C")  # a writable copy
        if arr.shape != (n_replicas, d):
            raise ValidationError(
                f"The 'x0' parameter of simulate must have shape ({d},) or (n_replicas, dim) = ({n_replicas}, {d}). "
                f"Got shape {arr.shape}."
            )
        return arr

    def variables(self, target: Any) -> list[Variable]:
        """The variables recorded at each recorded step."""
        raise NotImplementedError

    def init_state(self, target: Any, x0: npt.NDArray[np.float64], rng: npt.NDArray[np.uint64]) -> State:
        """Build the state from validated ``x0`` and the generator words ``rng`` (``uint64[R, 2]``)."""
        raise NotImplementedError

    def record(self, target: Any, state: State, out: dict[str, npt.NDArray[Any]], k: int) -> None:
        """Write the current state into record ``k`` of ``out`` (used for the initial record)."""
        raise NotImplementedError

    def advance(self, target: Any, state: State, n_steps: int, record_every: int, out: dict[str, npt.NDArray[Any]],
                k0: int, block: int) -> None:
        """Advance every replica by ``n_steps`` (a multiple of ``record_every``) from ``state.step``,
        writing the records at steps ``state.step + j*record_every`` (j = 1, 2, ...) into
        ``out[name][:, k0 + j - 1]``; ``block`` replicas form one unit of parallel work."""
        raise NotImplementedError

    def divergence_hint(self, target: Any) -> str:
        """One sentence on the likely cause of a blow-up, for the divergence warning."""
        return "the step is probably too large for the landscape's stiffness"


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, tuple):
        return [_plain(u) for u in v]
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v


def as_float_tuple(value: Any) -> Any:
    """Scalars stay floats; arrays become (nested) tuples, so frozen dataclasses stay hashable."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return float(arr)
    return tuple(as_float_tuple(v) for v in arr)


def params_json(integrator: Integrator) -> str:
    """The integrator's description (:meth:`Integrator.to_dict`) as JSON, for Dataset attributes."""
    return json.dumps(integrator.to_dict())
