"""Turning a user's ``rng`` argument into per-replica generator states.

stochdyn follows SPEC 7: ``rng`` may be an int, a :class:`numpy.random.SeedSequence`, a
:class:`numpy.random.Generator` or ``None``. Whatever it is, it becomes one
:class:`~numpy.random.SeedSequence`, whose entropy (and spawn key) are recorded in every Dataset
so that the run can be repeated exactly. From that sequence a 128-bit *study key* is drawn, and the
state of global replica ``r`` is a fixed function of (key, r) — see
:func:`stochdyn.random._core.seed_streams`. Hence replica ``r`` sees the same numbers whether it
runs alone, with 10 others or with a million, on any thread count or machine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .._validation import ValidationError
from ._core import seed_streams

__all__ = ["StreamKey", "stream_key", "seed_sequence_from_attrs", "RngLike"]

#: what ``rng=`` accepts (SPEC 7): an int, a SeedSequence, a Generator, or None (fresh entropy, recorded)
RngLike = int | np.random.SeedSequence | np.random.Generator | None


@dataclass(frozen=True)
class StreamKey:
    """A study key: the seed material of one ensemble run.

    Attributes
    ----------
    seed_sequence : numpy.random.SeedSequence
        The sequence the key was drawn from (its entropy and spawn key identify the run).
    k0, k1 : int
        The two 64-bit words of the key.
    """

    seed_sequence: np.random.SeedSequence

    @property
    def words(self) -> tuple[np.uint64, np.uint64]:
        state = self.seed_sequence.generate_state(2, np.uint64)
        return np.uint64(state[0]), np.uint64(state[1])

    def streams(self, replica_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Return the ``uint64[len(replica_ids), 2]`` generator states of the given global replicas."""
        ids = np.ascontiguousarray(replica_ids, dtype=np.int64)
        out = np.empty((ids.shape[0], 2), dtype=np.uint64)
        k0, k1 = self.words
        seed_streams(k0, k1, ids, out)
        return out

    def child(self, *keys: int) -> "StreamKey":
        """The key of a sub-study (a sweep's grid point), derived by extending the spawn key."""
        ss = self.seed_sequence
        return StreamKey(
            np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + tuple(int(k) for k in keys))
        )

    def attrs(self) -> dict[str, str]:
        """netCDF-safe attributes that identify the run's randomness (see :func:`seed_sequence_from_attrs`)."""
        ss = self.seed_sequence
        return {"seed": json.dumps(ss.entropy), "seed_spawn_key": json.dumps(list(ss.spawn_key))}


def stream_key(rng: Any, name: str = "rng") -> StreamKey:
    """Build the :class:`StreamKey` for a user's ``rng`` argument (SPEC 7).

    * ``int >= 0`` -> ``SeedSequence(rng)``
    * ``SeedSequence`` -> used as is
    * ``Generator`` -> a SeedSequence whose entropy is four 63-bit integers drawn from it (the
      generator advances; the drawn entropy is what gets recorded)
    * ``None`` -> fresh OS entropy (recorded, so the run can still be repeated)
    """
    if rng is None:
        ss = np.random.SeedSequence()
    elif isinstance(rng, np.random.SeedSequence):
        ss = rng
    elif isinstance(rng, np.random.Generator):
        ss = np.random.SeedSequence([int(v) for v in rng.integers(0, 2**63, size=4)])
    elif isinstance(rng, (int, np.integer)) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ValidationError(f"The '{name}' parameter must be a non-negative integer seed. Got {rng!r}.")
        ss = np.random.SeedSequence(int(rng))
    else:
        raise ValidationError(
            f"The '{name}' parameter must be an int >= 0, a numpy.random.SeedSequence, a numpy.random.Generator "
            f"or None. Got {rng!r} of type {type(rng).__name__}."
        )
    return StreamKey(ss)


def seed_sequence_from_attrs(attrs: dict) -> np.random.SeedSequence:
    """Rebuild the SeedSequence recorded in a Dataset's attributes, to repeat a run exactly.

    >>> ds2 = sd.simulate(..., rng=sd.random.seed_sequence_from_attrs(ds.attrs))  # doctest: +SKIP
    """
    try:
        entropy = json.loads(attrs["seed"])
        spawn_key = tuple(json.loads(attrs.get("seed_spawn_key", "[]")))
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"The attributes hold no stochdyn seed ('seed' and 'seed_spawn_key'): {exc}") from None
    return np.random.SeedSequence(entropy, spawn_key=spawn_key)
