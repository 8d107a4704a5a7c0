#!/usr/bin/env python3
"""Regenerate a coding audit's sample from its frame and seed, with the Python standard library only.

This file is the service's own sampling code (audit/coding_audit/sample_script.py) and is copied
byte for byte into every export bundle, so an outside party runs exactly what the service ran:

    python3 sample_script.py audits/<id>/frame.json      # prints the sample, one encounter id a line
    python3 sample_script.py audits/<id>/frame.json --check audits/<id>/sample.json

The frame file is ``{"frame": [{"id", "provider_id", "em_level"}...], "frame_sha256", "plan":
{"method", "n", "strata", "seed"}}``.

Algorithm (version 1):

1. The frame is the population's encounters sorted by id. Its SHA-256 is taken over its canonical
   JSON (keys sorted, separators ``,`` and ``:``, UTF-8): that is ``frame_sha256``.
2. One random number generator for the whole draw: CPython's ``random.Random(seed)`` (the Mersenne
   Twister MT19937 seeded with the integer seed), used only through ``Random.sample``.
3. ``random``: ``rng.sample(ids, min(n, N))`` over the sorted ids.
4. ``stratified`` (strata ``provider`` or ``em_level``): the frame is split into strata by that key;
   stratum k of N_k encounters gets floor(n * N_k / N) encounters, and the n left over go one each
   to the strata with the largest remainders (n * N_k mod N), ties to the smaller key. Strata are then
   drawn in ascending key order, each with ``rng.sample(sorted ids of the stratum, allocation)``.
5. ``probe``: n encounters per provider (all of a provider's when fewer), providers in ascending id
   order, each with ``rng.sample``.

The sample is the concatenation, in that order.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

ALGORITHM_VERSION = "1"


def frame_digest(frame: Sequence[Mapping[str, Any]]) -> str:
    """SHA-256 of the frame's canonical JSON."""
    canonical = json.dumps(list(frame), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _groups(frame: Iterable[Mapping[str, Any]], key: str) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for row in frame:
        groups.setdefault(str(row.get(key) or ""), []).append(str(row["id"]))
    return {k: sorted(v) for k, v in groups.items()}


def allocate(sizes: Mapping[str, int], n: int) -> dict[str, int]:
    """Proportional allocation by largest remainder (Hamilton), in whole encounters."""
    total = sum(sizes.values())
    if total == 0:
        return {k: 0 for k in sizes}
    n = min(n, total)
    share = {k: n * size // total for k, size in sizes.items()}
    left = n - sum(share.values())
    by_remainder = sorted(sizes, key=lambda k: (-(n * sizes[k] % total), k))
    for k in by_remainder[:left]:
        share[k] += 1
    return {k: min(share[k], sizes[k]) for k in sizes}


def draw(
    frame: Sequence[Mapping[str, Any]], method: str, n: int, seed: int, strata: str | None = None
) -> list[str]:
    """The sample, as the algorithm above describes."""
    rng = random.Random(seed)
    if method == "random":
        ids = sorted(str(row["id"]) for row in frame)
        return rng.sample(ids, min(n, len(ids)))
    if method == "stratified":
        groups = _groups(frame, "provider_id" if strata == "provider" else "em_level")
        quota = allocate({k: len(v) for k, v in groups.items()}, n)
        return [i for k in sorted(groups) for i in rng.sample(groups[k], quota[k])]
    if method == "probe":
        groups = _groups(frame, "provider_id")
        return [i for k in sorted(groups) for i in rng.sample(groups[k], min(n, len(groups[k])))]
    raise ValueError(f"unknown sampling method {method!r}")


def main(argv: Sequence[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    with open(argv[0], encoding="utf-8") as f:
        data = json.load(f)
    frame, plan = data["frame"], data["plan"]
    if frame_digest(frame) != data["frame_sha256"]:
        print("the frame does not match its frame_sha256", file=sys.stderr)
        return 1
    sample = draw(frame, plan["method"], int(plan["n"]), int(plan["seed"]), plan.get("strata"))
    if len(argv) >= 3 and argv[1] == "--check":
        with open(argv[2], encoding="utf-8") as f:
            expected = json.load(f)
        expected_ids = expected["encounter_ids"] if isinstance(expected, dict) else expected
        if sample != expected_ids:
            print("the sample differs from the one recorded", file=sys.stderr)
            return 1
        print(f"sample of {len(sample)} reproduced")
        return 0
    for encounter_id in sample:
        print(encounter_id)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
