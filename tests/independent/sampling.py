"""A coding audit's sample, drawn a second time without Python's ``random`` module: written from the
algorithm the export bundle documents (audit/coding_audit/sample_script.py, "Algorithm (version 1)")
and from the published definitions of what it names. Nothing here comes from the service (``audit``).

- MT19937 as Matsumoto and Nishimura's reference ``mt19937ar.c`` defines it (``init_genrand``,
  ``init_by_array``, ``genrand_int32``), seeded as CPython seeds ``random.Random(int)``: the absolute
  value split into 32-bit words, least significant first (one zero word for 0), through
  ``init_by_array``.
- ``getrandbits(k)`` for k <= 32: the top k bits of one 32-bit output. ``randbelow(n)``: draw
  ``n.bit_length()`` bits until the value is below n (rejection, no modulo bias).
- ``sample(population, k)`` as CPython 3 defines it: a partial Fisher-Yates shuffle of a copy when the
  population is small (n <= 21, or <= 21 + 4 ** ceil(log4(3k)) for k > 5), else k draws of an index
  below n, redrawing any index already taken.
- The plan's steps 3 to 5 (random, stratified with largest-remainder allocation, probe), from the
  documented text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

N, M = 624, 397
MATRIX_A, UPPER, LOWER = 0x9908B0DF, 0x80000000, 0x7FFFFFFF
MASK = 0xFFFFFFFF


class MT19937:
    def __init__(self, seed: int) -> None:
        n = abs(seed)
        key = []
        while n:
            key.append(n & MASK)
            n >>= 32
        self.mt = [0] * N
        self.mti = N + 1
        self._init_by_array(key or [0])

    def _init_genrand(self, s: int) -> None:
        mt = self.mt
        mt[0] = s & MASK
        for i in range(1, N):
            mt[i] = (1812433253 * (mt[i - 1] ^ (mt[i - 1] >> 30)) + i) & MASK
        self.mti = N

    def _init_by_array(self, key: list[int]) -> None:
        self._init_genrand(19650218)
        mt, i, j = self.mt, 1, 0
        for _ in range(max(N, len(key))):
            mt[i] = ((mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1664525)) + key[j] + j) & MASK
            i, j = i + 1, j + 1
            if i >= N:
                mt[0], i = mt[N - 1], 1
            if j >= len(key):
                j = 0
        for _ in range(N - 1):
            mt[i] = ((mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1566083941)) - i) & MASK
            i += 1
            if i >= N:
                mt[0], i = mt[N - 1], 1
        mt[0] = 0x80000000

    def _twist(self) -> None:
        mt = self.mt
        for kk in range(N):
            y = (mt[kk] & UPPER) | (mt[(kk + 1) % N] & LOWER)
            mt[kk] = mt[(kk + M) % N] ^ (y >> 1) ^ (MATRIX_A if y & 1 else 0)
        self.mti = 0

    def genrand_int32(self) -> int:
        if self.mti >= N:
            self._twist()
        y = self.mt[self.mti]
        self.mti += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        return y ^ (y >> 18)

    def getrandbits(self, k: int) -> int:
        assert 0 < k <= 32, "frames are far below 2**32 encounters"
        return self.genrand_int32() >> (32 - k)

    def randbelow(self, n: int) -> int:
        k = n.bit_length()
        r = self.getrandbits(k)
        while r >= n:
            r = self.getrandbits(k)
        return r

    def sample(self, population: Sequence[str], k: int) -> list[str]:
        n = len(population)
        assert 0 <= k <= n
        setsize = 21 + (4 ** math.ceil(math.log(k * 3, 4)) if k > 5 else 0)
        if n <= setsize:
            pool = list(population)
            out = []
            for i in range(k):
                j = self.randbelow(n - i)
                out.append(pool[j])
                pool[j] = pool[n - i - 1]
            return out
        taken: set[int] = set()
        picked = []
        for _ in range(k):
            j = self.randbelow(n)
            while j in taken:
                j = self.randbelow(n)
            taken.add(j)
            picked.append(population[j])
        return picked


def hamilton(sizes: Mapping[str, int], n: int) -> dict[str, int]:
    """Step 4's allocation: floor(n * N_k / N) each, then one more to the largest remainders
    (n * N_k mod N), ties to the smaller key; n is at most the population."""
    total = sum(sizes.values())
    if total == 0:
        return dict.fromkeys(sizes, 0)
    n = min(n, total)
    quota = {key: (n * size) // total for key, size in sizes.items()}
    remainder = {key: (n * size) % total for key, size in sizes.items()}
    waiting = set(sizes)
    for _ in range(n - sum(quota.values())):  # one at a time: the largest remainder, then the smaller key
        largest = max(remainder[key] for key in waiting)
        chosen = min(key for key in waiting if remainder[key] == largest)
        quota[chosen] += 1
        waiting.remove(chosen)
    return quota


def draw(frame: Sequence[Mapping[str, Any]], method: str, n: int, seed: int, strata: str | None) -> list[str]:
    rng = MT19937(seed)
    ids = sorted(str(row["id"]) for row in frame)
    if method == "random":
        return rng.sample(ids, min(n, len(ids)))
    key = "provider_id" if method == "probe" or strata == "provider" else "em_level"
    groups: dict[str, list[str]] = {}
    for row in frame:
        groups.setdefault(str(row.get(key) or ""), []).append(str(row["id"]))
    if method == "stratified":
        take = hamilton({k: len(v) for k, v in groups.items()}, n)
    elif method == "probe":
        take = {k: min(n, len(v)) for k, v in groups.items()}
    else:
        raise ValueError(method)
    return [i for k in sorted(groups) for i in rng.sample(sorted(groups[k]), take[k])]
