"""The service's sampling (the very script an export bundle carries) against the second implementation in
sampling.py, which draws without Python's ``random``: the same sample for every method, plan and seed,
and the same allocation. MT19937 is also checked against the reference outputs of ``mt19937ar.c``."""

from __future__ import annotations

import itertools

import pytest

from audit.coding_audit import sample_script
from tests.independent import sampling

LEVELS = ("99212", "99213", "99214", "99215", "")


def frame(size: int, providers: int) -> list[dict[str, str]]:
    """A frame with uneven strata: provider p holds about (p + 1) shares of the encounters."""
    weights = list(itertools.accumulate(range(1, providers + 1)))
    rows = []
    for i in range(size):
        slot = (i * 7919) % weights[-1]
        provider = next(p for p, w in enumerate(weights) if slot < w)
        rows.append({"id": f"enc-{(i * 104729) % 1000003:07d}", "provider_id": f"prov-{provider:02d}",
                     "em_level": LEVELS[(i * 31) % len(LEVELS)]})  # fmt: skip
    return rows


def test_mt19937_matches_the_reference_outputs() -> None:
    """mt19937ar.c seeded with init_by_array({0x123, 0x234, 0x345, 0x456}) prints these first outputs."""
    rng = sampling.MT19937(0x456_00000345_00000234_00000123)  # CPython's key: those four words
    first = [1067595299, 955945823, 477289528, 4107218783, 4228976476]  # mt19937ar.out, line 1
    assert [rng.genrand_int32() for _ in range(5)] == first


PLANS = [
    ("random", None), ("stratified", "provider"), ("stratified", "em_level"), ("probe", None),
]  # fmt: skip


@pytest.mark.parametrize(("method", "strata"), PLANS)
@pytest.mark.parametrize("size", [0, 1, 5, 22, 60, 400, 3000])
def test_the_service_draws_what_the_second_implementation_draws(
    method: str, strata: str | None, size: int
) -> None:
    rows = frame(size, providers=6)
    for n, seed in itertools.product((1, 5, 6, 30, 250), (0, 1, 42, 2**31 - 1, 2**40 + 7, 10**18, -9)):
        ours = sample_script.draw(rows, method, n, seed, strata)
        theirs = sampling.draw(rows, method, n, seed, strata)
        assert ours == theirs, (method, strata, size, n, seed)
        assert len(set(ours)) == len(ours)


def test_the_allocation_agrees_including_ties() -> None:
    for sizes in ({"a": 1, "b": 1, "c": 1}, {"x": 10, "y": 20, "z": 30}, {"b": 3, "a": 3, "c": 4}, {"a": 0}):
        for n in range(0, sum(sizes.values()) + 2):
            assert sample_script.allocate(sizes, n) == sampling.hamilton(sizes, n), (sizes, n)
