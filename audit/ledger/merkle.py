"""RFC 6962 / RFC 9162 Merkle tree over ledger leaf hashes.

Inputs are *leaf hashes* (``SHA-256(0x00 || payload)``, see :func:`audit.ledger.chain.leaf_hash`), not
payloads. Interior node = SHA-256(0x01 || left || right); the empty tree hashes to SHA-256(b"").

Everything is iterative: the tree of n leaves is built level by level with a lone last node promoted
unchanged to the next level, which is exactly the RFC 6962 split at the largest power of two below n.
Proofs are ordered from the leaf level upwards (the RFC's order).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(NODE_PREFIX + left + right).digest()


class MerkleBuilder:
    """Append leaf hashes one at a time; O(log n) memory; ``root()`` at any point.

    The stack holds the roots of the perfect subtrees whose sizes are the set bits of ``size``
    (largest first), so ``append`` costs amortised one node hash.
    """

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._stack: list[bytes] = []
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf: bytes) -> None:
        stack = self._stack
        n = self._size
        h = leaf
        while n & 1:
            h = _sha256(NODE_PREFIX + stack.pop() + h).digest()
            n >>= 1
        stack.append(h)
        self._size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def frontier(self) -> bytes:
        """The right-edge subtree roots (largest first), concatenated: with ``size`` all a builder
        needs to go on appending (``from_frontier``)."""
        return b"".join(self._stack)

    @classmethod
    def from_frontier(cls, size: int, nodes: bytes) -> MerkleBuilder:
        """A builder over ``size`` leaves from its ``frontier()``; ValueError when the node count is not
        the one a tree of that size has (one per set bit of ``size``)."""
        if size < 0 or len(nodes) != 32 * size.bit_count():
            raise ValueError(f"a frontier of {len(nodes)} bytes does not fit a tree of size {size}")
        builder = cls()
        builder._stack = [nodes[i : i + 32] for i in range(0, len(nodes), 32)]
        builder._size = size
        return builder

    def copy(self) -> MerkleBuilder:
        return MerkleBuilder.from_frontier(self._size, self.frontier())

    def root(self) -> bytes:
        stack = self._stack
        if not stack:
            return EMPTY_ROOT
        h = stack[-1]
        for left in reversed(stack[:-1]):
            h = _sha256(NODE_PREFIX + left + h).digest()
        return h


def merkle_root(leaves: Sequence[bytes] | Iterable[bytes]) -> bytes:
    """MTH(D[n]) in O(n) hashing and O(log n) extra memory."""
    builder = MerkleBuilder()
    builder.extend(leaves)
    return builder.root()


def _range_root(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) without copying the slice."""
    builder = MerkleBuilder()
    for i in range(lo, hi):
        builder.append(leaves[i])
    return builder.root()


def _split(n: int) -> int:
    """Largest power of two strictly less than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) (RFC 9162 2.1.3.1): O(n) hashing, O(log n) extra memory."""
    n = len(leaves)
    if not 0 <= index < n:
        raise IndexError(f"leaf index {index} outside tree of size {n}")
    proof: list[bytes] = []
    lo, hi, m = 0, n, index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            proof.append(_range_root(leaves, lo + k, hi))
            hi = lo + k
        else:
            proof.append(_range_root(leaves, lo, lo + k))
            lo, m = lo + k, m - k
    proof.reverse()
    return proof


def tree_levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """All levels of the tree, leaves first, root level last (about 2n hashes in memory)."""
    levels: list[list[bytes]] = [list(leaves)]
    current = levels[0]
    while len(current) > 1:
        nxt = [
            _sha256(NODE_PREFIX + current[i] + current[i + 1]).digest() for i in range(0, len(current) - 1, 2)
        ]
        if len(current) & 1:
            nxt.append(current[-1])
        levels.append(nxt)
        current = nxt
    return levels


def _proof_from_levels(levels: list[list[bytes]], index: int) -> list[bytes]:
    proof: list[bytes] = []
    i = index
    for level in levels[:-1]:
        sibling = i ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        i >>= 1
    return proof


def inclusion_proofs(
    leaves: Sequence[bytes], indexes: Iterable[int], levels: list[list[bytes]] | None = None
) -> dict[int, list[bytes]]:
    """Many inclusion proofs against MTH(D[n]) for the cost of building the tree once (or none, given
    its ``tree_levels``)."""
    n = len(leaves)
    wanted = list(indexes)
    for index in wanted:
        if not 0 <= index < n:
            raise IndexError(f"leaf index {index} outside tree of size {n}")
    if not wanted:
        return {}
    levels = levels or tree_levels(leaves)
    return {index: _proof_from_levels(levels, index) for index in wanted}


def verify_inclusion(leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2."""
    if not 0 <= index < tree_size:
        return False
    fn, sn, r = index, tree_size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _sha256(NODE_PREFIX + p + r).digest()
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _sha256(NODE_PREFIX + r + p).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def consistency_ranges(m: int, n: int) -> list[tuple[int, int]]:
    """The leaf ranges [lo, hi) whose subtree roots make up PROOF(m, D[n]) (RFC 9162 2.1.4.1), in
    proof order. The ranges are disjoint; empty for m == 0 or m == n."""
    if not 0 <= m <= n:
        raise ValueError(f"old size {m} outside 0..{n}")
    if m == 0 or m == n:
        return []
    # Iterative SUBPROOF(m, D[lo:hi], b): nodes are found top-down, so reverse at the end.
    ranges: list[tuple[int, int]] = []
    lo, hi, b = 0, n, True
    while True:
        size = hi - lo
        if m == size:
            if not b:
                ranges.append((lo, hi))
            break
        k = _split(size)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo, m, b = lo + k, m - k, False
    ranges.reverse()
    return ranges


def consistency_proof(leaves: Sequence[bytes], m: int) -> list[bytes]:
    """PROOF(m, D[n]) (RFC 9162 2.1.4.1); empty for m == 0 or m == n."""
    return [_range_root(leaves, lo, hi) for lo, hi in consistency_ranges(m, len(leaves))]


def consistency_proofs(
    leaves: Sequence[bytes], sizes: Iterable[int], levels: list[list[bytes]] | None = None
) -> dict[int, list[bytes]]:
    """PROOF(m, D[n]) for many m from one level-wise tree. Every range a proof needs is a node of it:
    it starts at a multiple of 2**h and spans 2**h leaves, or runs to the end of the tree (where the
    level-wise build promotes a lone node unchanged, exactly as RFC 6962 splits)."""
    n = len(leaves)
    wanted = list(sizes)
    if not wanted:
        return {}
    levels = levels or tree_levels(leaves)
    proofs = {}
    for m in wanted:
        proof = []
        for lo, hi in consistency_ranges(m, n):
            height = (hi - lo - 1).bit_length()
            proof.append(levels[height][lo >> height])
        proofs[m] = proof
    return proofs


def consistency_from_stream(leaves: Iterable[bytes], m: int, n: int) -> tuple[list[bytes], bytes, bytes]:
    """(PROOF(m, D[n]), MTH(D[m]), MTH(D[n])) from the first n leaf hashes, read once in order.

    Every leaf is hashed into exactly one subtree: the proof's ranges plus, when the old tree is a
    power of two (or m == n), the old tree itself tile [0, n). Both roots are then assembled from those
    subtree roots along the RFC 6962 splits, so memory stays O(log n) and the work is one pass.
    """
    ranges = consistency_ranges(m, n)
    tiles = set(ranges)
    if n and (m == n or m == 0 or m & (m - 1) == 0):
        tiles.add((0, n if m == 0 else m))
    known = _tile_roots(leaves, sorted(tiles), n)
    first = _assemble(known, 0, m) if m else EMPTY_ROOT
    second = _assemble(known, 0, n) if n else EMPTY_ROOT
    return [known[r] for r in ranges], first, second


def _tile_roots(
    leaves: Iterable[bytes], tiles: list[tuple[int, int]], n: int
) -> dict[tuple[int, int], bytes]:
    """Roots of disjoint leaf ranges that together cover [0, n), from one ordered pass over the leaves."""
    roots: dict[tuple[int, int], bytes] = {}
    it = iter(leaves)
    position = 0
    for lo, hi in tiles:
        if lo != position:
            raise ValueError(f"leaf ranges leave a gap at {position}")
        builder = MerkleBuilder()
        for _ in range(hi - lo):
            leaf = next(it, None)
            if leaf is None:
                raise ValueError(f"only {lo + builder.size} leaves for a tree of size {n}")
            builder.append(leaf)
        roots[(lo, hi)] = builder.root()
        position = hi
    if position != n:
        raise ValueError(f"leaf ranges end at {position}, not {n}")
    return roots


def _assemble(known: dict[tuple[int, int], bytes], lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) from known subtree roots, splitting as RFC 6962 does until one is known."""
    found = known.get((lo, hi))
    if found is not None:
        return found
    if hi - lo < 2:
        raise ValueError(f"no subtree root covers leaves {lo}..{hi}")
    k = _split(hi - lo)
    return node_hash(_assemble(known, lo, lo + k), _assemble(known, lo + k, hi))


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> bool:
    """RFC 9162 2.1.4.2, with the usual edge cases: equal sizes need an empty proof and equal roots;
    an empty old tree is consistent with anything (empty proof)."""
    if size1 < 0 or size2 < size1:
        return False
    if size1 == size2:
        return not proof and root1 == root2
    if size1 == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # exact power of two: the old root is itself a node of the path
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = _sha256(NODE_PREFIX + c + fr).digest()
            sr = _sha256(NODE_PREFIX + c + sr).digest()
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _sha256(NODE_PREFIX + sr + c).digest()
        fn >>= 1
        sn >>= 1
    return fr == root1 and sr == root2 and sn == 0
