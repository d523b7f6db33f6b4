"""Records of a fixed set of runs of every family are bit-identical to those saved before the kernel
rework (issue 10, "nothing lost"); see ``cases.py`` for when, and only when, to regenerate them."""

import pathlib

import numpy as np
import pytest

from cases import cases, records

SAVED = np.load(pathlib.Path(__file__).with_name("records.npz"))


@pytest.mark.parametrize("name", list(cases()))
def test_records_are_bit_identical_to_the_saved_ones(name):
    new = records(name)
    saved = {k.split("/", 1)[1]: SAVED[k] for k in SAVED.files if k.split("/", 1)[0] == name}
    assert saved, f"no saved records for {name}: regenerate only if the case is new"
    assert sorted(new) == sorted(saved)
    for v in saved:
        np.testing.assert_array_equal(new[v], saved[v], err_msg=f"{name}: {v}")
