"""Behaviour fixed while bringing mypy to zero errors (issue 16, item 10).

Each test failed before its fix: the annotations mypy checks disagreed with what the code did.
"""

import json
from types import MappingProxyType

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

import stochdyn as sd  # noqa: E402
from stochdyn._validation import ValidationError  # noqa: E402


@pytest.mark.parametrize("bounds", [
    [(-1.0, 1.0, 2.0), (-1.0, 1.0)],  # a triple: was "ValueError: too many values to unpack"
    (-2.0, 2.0),                      # one flat pair for two coordinates: was "TypeError: 'float' ... not iterable"
    [(-1.0, "x"), (-1.0, 1.0)],       # not a number: was "ValueError: could not convert string to float"
])
def test_plot_bounds_must_be_low_high_pairs(bounds):
    """``bounds`` of the landscape plots is one (low, high) pair per coordinate; anything else is a
    ValidationError naming the parameter (``_bounds`` is annotated as returning (lo, hi) pairs)."""
    land = sd.landscapes.DoubleWell()
    try:
        with pytest.raises(ValidationError, match="'bounds' parameter"):
            sd.plot.landscape_contours(land, bounds=bounds, resolution=10)
    finally:
        plt.close("all")


def test_plot_bounds_pairs_still_drawn():
    land = sd.landscapes.DoubleWell()
    try:
        ax = sd.plot.landscape_contours(land, bounds=[(-1, 1), (-0.5, 0.5)], resolution=10, colorbar=False)
        assert ax.get_xlim() == (-1.0, 1.0) and ax.get_ylim() == (-0.5, 0.5)
    finally:
        plt.close("all")


def test_sweep_grid_any_mapping():
    """``grid`` is annotated as a Mapping (callers build it from parsed specs): any mapping is accepted,
    with the same points as the equivalent dict."""
    from stochdyn.ensemble.sweeps import sweep_points

    grid = {"integrator.temperature": [0.1, 0.2], "target.barrier": (1.0, 2.0)}
    assert sweep_points(grid=MappingProxyType(grid)) == sweep_points(grid=grid)


def test_sharded_store_with_a_bad_fingerprint_is_not_resumed(tmp_path):
    """A complete store whose ``shards_fingerprint`` is not JSON text is refused with a ValidationError
    (it reached ``json.loads`` and raised TypeError)."""
    import zarr

    from stochdyn.ensemble.shards import _finished_store

    path = tmp_path / "run.zarr"
    zarr.open_group(str(path), mode="w").attrs.update({"status": "complete", "shards_fingerprint": 5})
    with pytest.raises(ValidationError, match="not written by a sharded run"):
        _finished_store(path, {"run": 1}, resume=True)
    zarr.open_group(str(path), mode="r+").attrs["shards_fingerprint"] = json.dumps({"run": 1})
    assert _finished_store(path, {"run": 1}, resume=True) is not None


def test_spec_key_hints_read_a_factory_signature_not_its_method_wrapper():
    # "did you mean" for a target table lists the constructor's keys and those of `from_data`; a bound
    # method used to be read through its `__init__` (always *args, **kwargs), so its keys were never listed
    from stochdyn.spec import _init_keys

    class Made:
        def __init__(self, a, b=1):
            pass

        @classmethod
        def from_data(cls, data, *, noise=0.0, seed=None):
            return cls(data)

    assert _init_keys(Made) == ["a", "b"]
    assert _init_keys(Made.from_data) == ["data", "noise", "seed"]
    assert _init_keys(sd.landscapes.DoubleWell) == ["dim", "barrier", "separation", "tilt", "stiffness"]
