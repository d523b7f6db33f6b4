"""Per-replica random streams: xoroshiro128++ generators seeded from (study key, replica).

Python side: :func:`stream_key` turns a SPEC-7 ``rng`` into a :class:`StreamKey`, whose
:meth:`StreamKey.streams` gives the ``uint64[R, 2]`` state array that kernels advance in place.
Kernel side (``stochdyn.random._core``): ``next_u64``, ``uniform``, ``normal`` (ziggurat),
``normal_boxmuller``, ``exponential``, ``randbelow``, each ``(…, s0, s1) -> (value, s0, s1)``, and
``normal_lanes``, the same ziggurat for every replica of a block at once (SIMD lanes, the same
numbers).
"""

from ._core import fill_normal, fill_normal_boxmuller, fill_u64, fill_uniform
from .streams import RngLike, StreamKey, seed_sequence_from_attrs, stream_key

__all__ = [
    "RngLike",
    "StreamKey",
    "stream_key",
    "seed_sequence_from_attrs",
    "fill_normal",
    "fill_normal_boxmuller",
    "fill_uniform",
    "fill_u64",
]
