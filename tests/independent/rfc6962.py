"""RFC 6962 section 2.1 Merkle Hash Trees: a second implementation, written from the RFC text alone.

Nothing here comes from the service (``audit``): the tests compare the service's Merkle code, and the
standalone bundle verifier's, with this one. Where the service is iterative and bit-twiddling, this file
follows the RFC's recursive definitions word for word, so the two share no shape to be wrong in.

Notation as in RFC 6962 section 2.1 (restated in RFC 9162 section 2.1): ``D[n]`` is the list of inputs
``d(0) .. d(n-1)``; ``D[k1:k2]`` is ``d(k1) .. d(k2-1)``; for ``n > 1``, ``k`` is the largest power of
two smaller than ``n``; ``:`` appends to a list::

    MTH({})        = SHA-256()
    MTH({d(0)})    = SHA-256(0x00 || d(0))
    MTH(D[n])      = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))

    PATH(0, {d(0)}) = {}
    PATH(m, D[n])   = PATH(m, D[0:k]) : MTH(D[k:n])           for m < k
    PATH(m, D[n])   = PATH(m - k, D[k:n]) : MTH(D[0:k])       for m >= k

    PROOF(m, D[n])            = SUBPROOF(m, D[n], true)
    SUBPROOF(m, D[m], true)   = {}
    SUBPROOF(m, D[m], false)  = {MTH(D[m])}
    SUBPROOF(m, D[n], b)      = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])          for m <= k
    SUBPROOF(m, D[n], b)      = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])  for m > k

Verification runs each definition backwards: the last element of a proof is the node the outermost
split added, so a verifier peels proofs from the end, recursing on the same ``k`` the prover used. A
proof is accepted only if it is used up exactly. Two conventions the RFC leaves open, taken as RFC 9162
and the transparency-dev verifiers take them: a consistency proof between equal sizes is empty and the
roots must be equal; from size 0 (the empty tree commits to nothing) only the empty proof is accepted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(entry: bytes) -> bytes:
    """MTH({d(0)}) = SHA-256(0x00 || d(0))."""
    return sha256(LEAF_PREFIX + entry)


def node(left: bytes, right: bytes) -> bytes:
    return sha256(NODE_PREFIX + left + right)


def split_point(n: int) -> int:
    """k: the largest power of two smaller than n (n > 1), found by doubling, as the RFC words it."""
    if n < 2:
        raise ValueError("k is defined for n > 1")
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class Tree:
    """D[n] for a list of inputs, with MTH over any range D[lo:hi] remembered once computed.

    Built from the inputs d(i) themselves (``Tree(entries)``) or from their leaf hashes
    (``Tree.of_leaf_hashes``), since MTH({d(i)}) is all the definitions ever use of an input.
    """

    def __init__(self, entries: Sequence[bytes] = ()) -> None:
        self.leaves = [leaf_hash(d) for d in entries]
        self._mth: dict[tuple[int, int], bytes] = {}

    @classmethod
    def of_leaf_hashes(cls, hashes: Sequence[bytes]) -> Tree:
        tree = cls()
        tree.leaves = list(hashes)
        return tree

    @property
    def size(self) -> int:
        return len(self.leaves)

    def mth(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi])."""
        if not 0 <= lo <= hi <= self.size:
            raise IndexError(f"D[{lo}:{hi}] is not inside D[{self.size}]")
        n = hi - lo
        if n == 0:
            return sha256(b"")
        if n == 1:
            return self.leaves[lo]
        got = self._mth.get((lo, hi))
        if got is None:
            k = split_point(n)
            got = node(self.mth(lo, lo + k), self.mth(lo + k, hi))
            self._mth[(lo, hi)] = got
        return got

    def root(self, n: int | None = None) -> bytes:
        """MTH(D[0:n]) (the whole tree by default)."""
        return self.mth(0, self.size if n is None else n)

    def path(self, m: int, n: int | None = None) -> list[bytes]:
        """PATH(m, D[0:n]): the inclusion proof of d(m) in the tree of the first n inputs."""
        n = self.size if n is None else n
        if not 0 <= m < n <= self.size:
            raise IndexError(f"PATH({m}, D[{n}]) needs 0 <= m < n <= {self.size}")
        return self._path(m, 0, n)

    def _path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = split_point(n)
        if m < k:
            return [*self._path(m, lo, lo + k), self.mth(lo + k, hi)]
        return [*self._path(m - k, lo + k, hi), self.mth(lo, lo + k)]

    def proof(self, m: int, n: int | None = None) -> list[bytes]:
        """PROOF(m, D[0:n]): the consistency proof from the tree of the first m inputs to that of n."""
        n = self.size if n is None else n
        if not 0 <= m <= n <= self.size:
            raise IndexError(f"PROOF({m}, D[{n}]) needs 0 <= m <= n <= {self.size}")
        if m == 0:
            return []
        return self._subproof(m, 0, n, True)

    def _subproof(self, m: int, lo: int, hi: int, b: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if b else [self.mth(lo, hi)]
        k = split_point(n)
        if m <= k:
            return [*self._subproof(m, lo, lo + k, b), self.mth(lo + k, hi)]
        return [*self._subproof(m - k, lo + k, hi, False), self.mth(lo, lo + k)]


def root_from_path(m: int, n: int, leaf: bytes, path: Sequence[bytes]) -> bytes | None:
    """The root that PATH(m, D[n]) leads to from ``leaf``, or None if the path has the wrong shape."""
    if not 0 <= m < n:
        return None
    if n == 1:
        return leaf if not path else None
    if not path:
        return None
    *rest, last = path
    k = split_point(n)
    if m < k:
        left = root_from_path(m, k, leaf, rest)
        return None if left is None else node(left, last)
    right = root_from_path(m - k, n - k, leaf, rest)
    return None if right is None else node(last, right)


def verify_inclusion(leaf: bytes, m: int, n: int, path: Sequence[bytes], root: bytes) -> bool:
    return root_from_path(m, n, leaf, path) == root


def _roots_from_subproof(
    m: int, n: int, b: bool, proof: Sequence[bytes], old_root: bytes
) -> tuple[bytes, bytes] | None:
    """(MTH of the first m inputs, MTH of all n) that SUBPROOF(m, D[n], b) leads to, or None.

    When b is true and m == n, the subtree D[0:m] is the old tree itself, whose root the verifier
    already holds: that is why the RFC leaves it out of the proof."""
    if m == n:
        if b:
            return (old_root, old_root) if not proof else None
        return (proof[0], proof[0]) if len(proof) == 1 else None
    if not proof:
        return None
    *rest, last = proof
    k = split_point(n)
    if m <= k:
        sub = _roots_from_subproof(m, k, b, rest, old_root)
        return None if sub is None else (sub[0], node(sub[1], last))
    sub = _roots_from_subproof(m - k, n - k, False, rest, old_root)
    # k < m <= n <= 2k, so k is also the split of D[0:m]: MTH(D[0:m]) = H(MTH(D[0:k]), MTH(D[k:m])).
    return None if sub is None else (node(last, sub[0]), node(last, sub[1]))


def verify_consistency(m: int, n: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes) -> bool:
    if not 0 <= m <= n:
        return False
    if m == 0:
        return not proof
    return _roots_from_subproof(m, n, True, proof, old_root) == (old_root, new_root)
