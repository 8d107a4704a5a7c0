"""Our Merkle code agrees with the independent RFC 6962 implementation (tests/independent/rfc6962.py).

Two of ours are checked: the service's (audit/ledger/merkle.py) and the standalone bundle verifier's own
(audit/export/verify.py: its streaming tree, its block-wise subtrees and its inclusion verifier), which
is issue 10's "check its own Merkle code against the service's". Checked: every root for sizes 0..300
and for some large sizes; every inclusion and consistency proof for all pairs up to size 128 and random
pairs in large trees, byte for byte; each verifier accepts them; and every verifier gives the same
verdict on the corrupted proofs transparency-dev/merkle's own tests use (proof/verify_test.go).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import pytest

from audit.export import verify as bundle_verify
from audit.ledger import merkle
from audit.ledger.chain import leaf_hash
from tests.independent import rfc6962

ROOT_SIZES = 300
ALL_PAIRS = 128
BIG_SIZES = (1023, 1024, 1025, 4097, 65_536, 70_001)
RANDOM_PAIRS = 6
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")

ENTRIES = [f'{{"seq":{i},"type":"demo"}}'.encode() for i in range(max(BIG_SIZES))]
REFERENCE = rfc6962.Tree(ENTRIES)  # hashes the entries itself
OUR_LEAVES = [leaf_hash(entry) for entry in ENTRIES]


def test_leaf_hashes_agree() -> None:
    assert REFERENCE.leaves == OUR_LEAVES


def test_roots_for_every_size_up_to_300() -> None:
    builder, streamed = merkle.MerkleBuilder(), bundle_verify._Merkle()
    for n in range(ROOT_SIZES + 1):
        expected = REFERENCE.root(n)
        assert merkle.merkle_root(OUR_LEAVES[:n]) == expected, n
        assert builder.root() == expected and streamed.root() == expected, n
        if n:
            assert merkle.tree_levels(OUR_LEAVES[:n])[-1] == [expected], n
        builder.append(OUR_LEAVES[n])
        streamed.append(OUR_LEAVES[n])


@pytest.mark.parametrize("n", BIG_SIZES)
def test_roots_of_large_trees(n: int) -> None:
    assert merkle.merkle_root(OUR_LEAVES[:n]) == REFERENCE.root(n)


def test_bundle_verifier_subtrees_in_any_block_cut() -> None:
    """verify.py hashes each block of lines into aligned perfect subtrees, then stacks them: for random
    block cuts, the stacked root equals the reference at every block boundary."""
    rng = random.Random(9162)
    for _ in range(40):
        streamed, start = bundle_verify._Merkle(), 0
        while start < ROOT_SIZES:
            end = min(ROOT_SIZES, start + rng.randint(1, 70))
            for height, root in bundle_verify._subtrees(OUR_LEAVES[start:end], start):
                streamed.append_subtree(height, root)
            start = end
            assert streamed.size == end and streamed.root() == REFERENCE.root(end)


def _our_inclusion_verdicts(leaf: bytes, m: int, n: int, proof: Sequence[bytes], root: bytes) -> list[bool]:
    return [
        merkle.verify_inclusion(leaf, m, n, proof, root),
        bundle_verify._verify_inclusion(leaf, m, n, list(proof), root),
    ]


def _check_inclusion(m: int, n: int) -> None:
    path = REFERENCE.path(m, n)
    assert merkle.inclusion_proof(OUR_LEAVES[:n], m) == path, (m, n)
    root, leaf = REFERENCE.root(n), REFERENCE.leaves[m]
    assert rfc6962.verify_inclusion(leaf, m, n, path, root)
    assert _our_inclusion_verdicts(leaf, m, n, path, root) == [True, True], (m, n)


def _check_consistency(m: int, n: int) -> None:
    proof = REFERENCE.proof(m, n)
    assert merkle.consistency_proof(OUR_LEAVES[:n], m) == proof, (m, n)
    old, new = REFERENCE.root(m), REFERENCE.root(n)
    assert rfc6962.verify_consistency(m, n, proof, old, new)
    assert merkle.verify_consistency(m, n, proof, old, new), (m, n)


def test_every_inclusion_proof_up_to_size_128() -> None:
    for n in range(1, ALL_PAIRS + 1):
        batch = merkle.inclusion_proofs(OUR_LEAVES[:n], range(n))
        for m in range(n):
            _check_inclusion(m, n)
            assert batch[m] == REFERENCE.path(m, n)


def test_every_consistency_proof_up_to_size_128() -> None:
    for n in range(ALL_PAIRS + 1):
        for m in range(n + 1):
            _check_consistency(m, n)


@pytest.mark.parametrize("n", BIG_SIZES)
def test_random_proofs_in_large_trees(n: int) -> None:
    rng = random.Random(n)
    indexes = [0, n - 1, *(rng.randrange(n) for _ in range(RANDOM_PAIRS))]
    batch = merkle.inclusion_proofs(OUR_LEAVES[:n], indexes)
    for m in indexes:
        assert batch[m] == REFERENCE.path(m, n)
    _check_inclusion(indexes[-1], n)
    for m in [1, n - 1, 1 << (n.bit_length() - 1), *(rng.randrange(1, n) for _ in range(RANDOM_PAIRS))]:
        _check_consistency(m, n)


# --- Corrupted proofs: transparency-dev/merkle proof/verify_test.go's probes -----------------------


def _flip(proof: Sequence[bytes], i: int, bit: int) -> list[bytes]:
    out = list(proof)
    out[i] = bytes([out[i][0] ^ bit]) + out[i][1:]
    return out


def _inclusion_probes(
    m: int, n: int, proof: list[bytes], root: bytes, leaf: bytes
) -> list[tuple[str, int, int, list[bytes], bytes, bytes]]:
    probes = [
        ("index - 1", m - 1, n, proof, root, leaf),
        ("index + 1", m + 1, n, proof, root, leaf),
        ("index ^ 2", m ^ 2, n, proof, root, leaf),
        ("size * 2", m, n * 2, proof, root, leaf),
        ("size / 2", m, n // 2, proof, root, leaf),
        ("wrong leaf", m, n, proof, root, b"WrongLeaf"),
        ("empty root", m, n, proof, rfc6962.sha256(b""), leaf),
        ("random root", m, n, proof, SOME_HASH, leaf),
        ("trailing garbage", m, n, [*proof, b""], root, leaf),
        ("trailing root", m, n, [*proof, root], root, leaf),
        ("preceding garbage", m, n, [b"", *proof], root, leaf),
        ("preceding root", m, n, [root, *proof], root, leaf),
    ]
    probes += [(f"bit 3 of proof[{i}]", m, n, _flip(proof, i, 8), root, leaf) for i in range(len(proof))]
    if proof:
        probes.append(("removed component", m, n, proof[:-1], root, leaf))
    if len(proof) > 1:
        probes.append(("inserted component", m, n, [proof[0], SOME_HASH, *proof[1:]], root, leaf))
    return probes


def _consistency_probes(
    m: int, n: int, old: bytes, new: bytes, proof: list[bytes]
) -> list[tuple[str, int, int, bytes, bytes, list[bytes]]]:
    probes = [
        ("size1 - 1", m - 1, n, old, new, proof),
        ("size1 + 1", m + 1, n, old, new, proof),
        ("size1 ^ 2", m ^ 2, n, old, new, proof),
        ("size2 * 2", m, n * 2, old, new, proof),
        ("size2 / 2", m, n // 2, old, new, proof),
        ("wrong root1", m, n, b"WrongRoot", new, proof),
        ("wrong root2", m, n, old, b"WrongRoot", proof),
        ("swapped roots", m, n, new, old, proof),
        ("empty proof", m, n, old, new, []),
        ("trailing garbage", m, n, old, new, [*proof, b""]),
        ("trailing root1", m, n, old, new, [*proof, old]),
        ("trailing root2", m, n, old, new, [*proof, new]),
        ("preceding garbage", m, n, old, new, [b"", *proof]),
        ("preceding root1", m, n, old, new, [old, *proof]),
        ("preceding root2", m, n, old, new, [new, *proof]),
        ("preceding proof[0]", m, n, old, new, [proof[0], *proof]),
        ("truncated proof", m, n, old, new, proof[:-1]),
    ]
    probes += [(f"bit 4 of proof[{i}]", m, n, old, new, _flip(proof, i, 16)) for i in range(len(proof))]
    return probes


def _pairs(limit: int) -> list[tuple[int, int]]:
    rng = random.Random(6962)
    small = [(m, n) for n in range(1, 34) for m in range(n)]
    large = [(rng.randrange(n), n) for n in BIG_SIZES[:4] for _ in range(3)]
    return [(m, n) for m, n in small + large if n <= limit]


def test_corrupted_inclusion_proofs_are_refused_by_every_verifier() -> None:
    for m, n in _pairs(4097):
        proof, root, leaf = REFERENCE.path(m, n), REFERENCE.root(n), REFERENCE.leaves[m]
        for name, pm, pn, pproof, proot, pleaf in _inclusion_probes(m, n, proof, root, leaf):
            reference = rfc6962.verify_inclusion(pleaf, pm, pn, pproof, proot)
            assert _our_inclusion_verdicts(pleaf, pm, pn, pproof, proot) == [reference, reference], (
                m,
                n,
                name,
            )
            assert not reference, (m, n, name)


def test_corrupted_consistency_proofs_are_refused_by_every_verifier() -> None:
    verifiers: list[Callable[..., bool]] = [rfc6962.verify_consistency, merkle.verify_consistency]
    for m, n in _pairs(4097):
        if m == 0:
            continue  # from the empty tree only the empty proof exists: nothing to corrupt
        proof, old, new = REFERENCE.proof(m, n), REFERENCE.root(m), REFERENCE.root(n)
        for name, pm, pn, pold, pnew, pproof in _consistency_probes(m, n, old, new, proof):
            verdicts = [verify(pm, pn, pproof, pold, pnew) for verify in verifiers]
            assert verdicts == [verdicts[0]] * len(verifiers), (m, n, name)
            # A probe stays a true statement only when it changed nothing that matters.
            honest = 0 <= pm <= pn <= len(ENTRIES) and pproof == REFERENCE.proof(pm, pn)
            assert verdicts[0] == (honest and (pold, pnew) == (REFERENCE.root(pm), REFERENCE.root(pn))), (
                m,
                n,
                name,
            )
