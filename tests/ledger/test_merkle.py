"""RFC 6962 / 9162 Merkle tree: published CT vectors plus property tests."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.ledger.merkle import (
    EMPTY_ROOT,
    MerkleBuilder,
    consistency_from_stream,
    consistency_proof,
    consistency_proofs,
    inclusion_proof,
    inclusion_proofs,
    merkle_root,
    verify_consistency,
    verify_inclusion,
)

# Certificate Transparency reference inputs (transparency-dev/merkle testonly.LeafInputs).
LEAF_INPUTS = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
LEAVES = [hashlib.sha256(b"\x00" + d).digest() for d in LEAF_INPUTS]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def _hexes(proof: list[bytes]) -> list[str]:
    return [p.hex() for p in proof]


def test_hand_checkable_roots() -> None:
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert merkle_root([]) == EMPTY_ROOT
    # One leaf: the root is the leaf hash SHA-256(0x00 || "").
    assert merkle_root(LEAVES[:1]) == hashlib.sha256(b"\x00").digest()
    two = hashlib.sha256(b"\x01" + LEAVES[0] + LEAVES[1]).digest()
    assert merkle_root(LEAVES[:2]) == two
    # Three leaves: the lone third leaf is promoted, not duplicated.
    assert merkle_root(LEAVES[:3]) == hashlib.sha256(b"\x01" + two + LEAVES[2]).digest()


@pytest.mark.parametrize("n", range(9))
def test_ct_reference_roots(n: int) -> None:
    assert merkle_root(LEAVES[:n]).hex() == ROOTS[n]


def test_builder_matches_every_prefix() -> None:
    b = MerkleBuilder()
    assert b.root().hex() == ROOTS[0]
    for n, leaf in enumerate(LEAVES, start=1):
        b.append(leaf)
        assert b.size == n
        assert b.root().hex() == ROOTS[n]


# transparency-dev / certificate-transparency-go inclusion vectors: (index, size, path).
INCLUSION_VECTORS = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION_VECTORS)
def test_ct_inclusion_vectors(index: int, size: int, path: list[str]) -> None:
    leaves = LEAVES[:size]
    assert _hexes(inclusion_proof(leaves, index)) == path
    assert _hexes(inclusion_proofs(leaves, [index])[index]) == path
    root = bytes.fromhex(ROOTS[size])
    assert verify_inclusion(leaves[index], index, size, [bytes.fromhex(p) for p in path], root)


# (old size, new size, proof)
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        3,
        8,
        [
            "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
            "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
]


@pytest.mark.parametrize(("m", "n", "path"), CONSISTENCY_VECTORS)
def test_ct_consistency_vectors(m: int, n: int, path: list[str]) -> None:
    assert _hexes(consistency_proof(LEAVES[:n], m)) == path
    assert verify_consistency(
        m, n, [bytes.fromhex(p) for p in path], bytes.fromhex(ROOTS[m]), bytes.fromhex(ROOTS[n])
    )


def test_rejects_out_of_range_and_edge_cases() -> None:
    root = merkle_root(LEAVES)
    with pytest.raises(IndexError):
        inclusion_proof(LEAVES, 8)
    with pytest.raises(IndexError):
        inclusion_proofs(LEAVES, [0, 9])
    with pytest.raises(ValueError):
        consistency_proof(LEAVES, 9)
    assert not verify_inclusion(LEAVES[0], 8, 8, inclusion_proof(LEAVES, 0), root)
    assert not verify_inclusion(LEAVES[0], 0, 8, [*inclusion_proof(LEAVES, 0), LEAVES[1]], root)
    assert not verify_inclusion(LEAVES[0], 0, 8, inclusion_proof(LEAVES, 0)[:-1], root)
    assert verify_consistency(0, 8, [], EMPTY_ROOT, root)
    assert not verify_consistency(3, 8, [], merkle_root(LEAVES[:3]), root)
    assert not verify_consistency(8, 3, [], root, merkle_root(LEAVES[:3]))
    assert not verify_consistency(8, 8, [LEAVES[0]], root, root)


def test_large_tree_is_iterative() -> None:
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(100_003)]
    root = merkle_root(leaves)
    proofs = inclusion_proofs(leaves, [0, 65_536, 100_002])
    for i, proof in proofs.items():
        assert proof == inclusion_proof(leaves, i)
        assert verify_inclusion(leaves[i], i, len(leaves), proof, root)


def _flip(proof: list[bytes], which: int, bit: int) -> list[bytes]:
    out = list(proof)
    target = bytearray(out[which])
    target[bit // 8] ^= 1 << (bit % 8)
    out[which] = bytes(target)
    return out


@st.composite
def _tree_and_index(draw: st.DrawFn) -> tuple[list[bytes], int]:
    n = draw(st.integers(min_value=1, max_value=70))
    return LEAVES_POOL[:n], draw(st.integers(min_value=0, max_value=n - 1))


LEAVES_POOL = [hashlib.sha256(b"pool" + i.to_bytes(2, "big")).digest() for i in range(70)]


@settings(max_examples=300, deadline=None)
@given(_tree_and_index(), st.integers(min_value=0, max_value=10_000))
def test_every_inclusion_proof_verifies_and_a_flipped_bit_fails(
    tree: tuple[list[bytes], int], noise: int
) -> None:
    leaves, index = tree
    n = len(leaves)
    root = merkle_root(leaves)
    proof = inclusion_proof(leaves, index)
    assert proof == inclusion_proofs(leaves, [index])[index]
    assert verify_inclusion(leaves[index], index, n, proof, root)
    bad_leaf = _flip([leaves[index]], 0, noise % 256)[0]
    assert not verify_inclusion(bad_leaf, index, n, proof, root)
    assert not verify_inclusion(leaves[index], index, n, proof, _flip([root], 0, noise % 256)[0])
    if proof:
        assert not verify_inclusion(
            leaves[index], index, n, _flip(proof, noise % len(proof), noise % 256), root
        )
    if n > 1:
        assert (
            not verify_inclusion(leaves[index], (index + 1) % n, n, proof, root)
            or leaves[index] == leaves[(index + 1) % n]
        )


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=70), st.data())
def test_every_consistency_proof_verifies_and_a_flipped_bit_fails(n: int, data: st.DataObject) -> None:
    m = data.draw(st.integers(min_value=0, max_value=n))
    noise = data.draw(st.integers(min_value=0, max_value=10_000))
    leaves = LEAVES_POOL[:n]
    old, new = merkle_root(leaves[:m]), merkle_root(leaves)
    proof = consistency_proof(leaves, m)
    assert verify_consistency(m, n, proof, old, new)
    if proof:
        assert not verify_consistency(m, n, _flip(proof, noise % len(proof), noise % 256), old, new)
    if m > 0:
        assert not verify_consistency(m, n, proof, _flip([old], 0, noise % 256)[0], new)
        assert not verify_consistency(m, n, proof, old, _flip([new], 0, noise % 256)[0])


@pytest.mark.parametrize("n", [*range(0, 70), 127, 128, 129, 1000])
def test_streamed_and_level_wise_consistency_proofs_equal_the_recursive_ones(n: int) -> None:
    """One pass over streamed leaves (the endpoint) and one level-wise tree for many sizes (bundles)
    give the same proofs as the RFC's recursion, and the streamed pass both roots."""
    leaves = (LEAVES_POOL * (n // len(LEAVES_POOL) + 1))[:n]
    sizes = range(0, n + 1) if n < 130 else [0, 1, 2, 3, 500, 511, 512, 513, 999, 1000][: n + 1]
    many = consistency_proofs(leaves, sizes)
    for m in sizes:
        expected = consistency_proof(leaves, m)
        proof, old, new = consistency_from_stream(iter(leaves), m, n)
        assert proof == expected and many[m] == expected, m
        assert (old, new) == (merkle_root(leaves[:m]), merkle_root(leaves))
    if n:  # a ledger with a gap: fewer leaves than the tree size
        with pytest.raises(ValueError, match="leaves for a tree of size"):
            consistency_from_stream(iter(leaves[:-1]), n // 2, n)
