"""Slice membership from the raw values an evaluation read: each value's assets, as the facet
counts them (True apart from 1, a list once per distinct element, non-scalars left out)."""

from __future__ import annotations

from typing import Any

import numpy as np

from service.evals.evaluate import grouped
from service.evals.slices import positions, slice_key


def brute(raw: list[Any]) -> dict[Any, list[int]]:
    out: dict[Any, list[int]] = {}
    for pos, value in enumerate(raw):
        values = value if isinstance(value, list) else [value]
        keys = {slice_key(v) for v in values if isinstance(v, str | int | float | bool)}
        for k in keys:
            out.setdefault(k, []).append(pos)
    return out


def as_lists(got: dict[Any, np.ndarray]) -> dict[Any, list[int]]:
    return {k: v.tolist() for k, v in got.items()}


def test_plain_values_are_coded_in_one_pass():
    raw = ["north", None, "south", "north", 3, 3.0, 2.5, None, "3"]
    got = as_lists(positions(raw))
    assert got == brute(raw)
    assert got["north"] == [0, 3] and got[3] == [4, 5] and got["3"] == [8]  # 3 and 3.0: one slice
    assert None not in got


def test_booleans_lists_and_objects_take_the_general_path():
    raw = [True, 1, False, 0, ["a", "b", "a"], {"x": 1}, [True, 1, {"y": 2}], None, "a"]
    got = as_lists(positions(raw))
    assert got == brute(raw)
    assert got[slice_key(True)] == [0, 6] and got[1] == [1, 6]  # True and 1 are two slices
    assert got[slice_key(False)] == [2] and got[0] == [3]
    assert got["a"] == [4, 8] and got["b"] == [4]  # an asset once per distinct element


def test_random_mixes_agree_with_a_value_by_value_count():
    rng = np.random.default_rng(1)
    pool: list[Any] = ["x", "y", 1, 2.0, True, False, None, ["x", 1], [], {"k": "x"}]
    for _ in range(20):
        raw = [pool[i] for i in rng.integers(len(pool), size=200)]
        assert as_lists(positions(raw)) == brute(raw)
        plain = [v for v in raw if type(v) in (str, int, float) or v is None]
        assert as_lists(positions(plain)) == brute(plain)


def test_equal_outcomes_are_grouped_with_their_positions():
    outcomes = [
        {"tp": 1, "fp": 0, "confusion": ["a|a"]},
        {"tp": 0, "fp": 2, "confusion": []},
        {"fp": 0, "tp": 1, "confusion": ["a|a"]},
    ]
    assert grouped(outcomes) == [
        ({"confusion": ["a|a"], "fp": 0, "tp": 1}, [0, 2]),
        ({"confusion": [], "fp": 2, "tp": 0}, [1]),
    ]
