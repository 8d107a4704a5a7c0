"""The independent implementations against published vectors, so that their agreement with ours means
something; ours (audit/ledger/checkpoint.py and audit/export/verify.py) against the same note vectors.

Sources, all public:
- RFC 9162 section 2.1.5 (and draft-ietf-trans-rfc6962-bis): the worked 7-leaf example.
- transparency-dev/merkle ``proof/verify_test.go`` and ``testonly``: roots, inclusion and consistency
  proofs over 8 fixed inputs (the same vectors tests/ledger/test_merkle.py checks ours with).
- golang.org/x/mod ``sumdb/note/note_test.go`` (commit 02c991387e35): the PeterNeumann and EnochRoot
  keys and signatures, and the verifier keys and messages Go refuses.
- transparency-dev/formats ``log/note_test.go``: a real sum.golang.org checkpoint with its verifier key,
  cosigned by three test witnesses (monkeys, bananas, witness).
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.export import verify as bundle_verify
from audit.ledger.checkpoint import CheckpointError, key_hash, parse_and_verify_note, parse_public_key_text
from tests.independent import c2sp_note as note
from tests.independent import rfc6962
from tests.independent.ours import bundle_dir
from tests.ledger.test_merkle import CONSISTENCY_VECTORS, INCLUSION_VECTORS, LEAF_INPUTS, ROOTS

# --- RFC 6962 / 9162 -------------------------------------------------------------------------------


def test_rfc_worked_example_of_seven_leaves() -> None:
    """RFC 9162 2.1.5: node names as in the RFC's figure; d0..d6 are any seven distinct inputs."""
    tree = rfc6962.Tree([bytes([i]) for i in range(7)])
    a, b, c, d, e, f, d6 = (tree.mth(i, i + 1) for i in range(7))
    g, h, i, j = tree.mth(0, 2), tree.mth(2, 4), tree.mth(4, 6), tree.mth(6, 7)
    k, l = tree.mth(0, 4), tree.mth(4, 7)  # noqa: E741 (the RFC's names)
    assert j == d6 and tree.root() == rfc6962.node(k, l) and k == rfc6962.node(g, h)
    assert tree.path(0) == [b, h, l]
    assert tree.path(3) == [c, g, l]
    assert tree.path(4) == [f, j, k]
    assert tree.path(6) == [i, k]
    assert tree.proof(3) == [c, d, g, l]
    assert tree.proof(4) == [l]
    assert tree.proof(6) == [i, j, k]
    hash0, hash1, hash2 = tree.root(3), tree.root(4), tree.root(6)
    assert hash1 == k and hash2 == rfc6962.node(k, i) and hash0 == rfc6962.node(g, c)
    for m, old in ((3, hash0), (4, hash1), (6, hash2)):
        assert rfc6962.verify_consistency(m, 7, tree.proof(m), old, tree.root())
    assert a == rfc6962.leaf_hash(b"\x00") and e == rfc6962.leaf_hash(b"\x04")


def test_ct_reference_roots_and_proofs() -> None:
    tree = rfc6962.Tree(LEAF_INPUTS)
    assert [tree.root(n).hex() for n in range(len(LEAF_INPUTS) + 1)] == ROOTS
    for index, size, path in INCLUSION_VECTORS:
        assert [p.hex() for p in tree.path(index, size)] == path
        proof = [bytes.fromhex(p) for p in path]
        assert rfc6962.verify_inclusion(tree.leaves[index], index, size, proof, tree.root(size))
    for m, n, path in CONSISTENCY_VECTORS:
        assert [p.hex() for p in tree.proof(m, n)] == path
        proof = [bytes.fromhex(p) for p in path]
        assert rfc6962.verify_consistency(m, n, proof, tree.root(m), tree.root(n))


def test_edge_cases_as_transparency_dev_decides_them() -> None:
    """transparency-dev/merkle TestVerifyConsistency and TestVerifyInclusion edge cases."""
    empty, some = (
        rfc6962.sha256(b""),
        bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456"),
    )
    r1, r2 = b"don't care 1", b"don't care 2"
    cases = [
        (0, 0, r1, r2, [], True),  # from the empty tree anything is consistent (roots are not compared)
        (1, 1, r1, r2, [], False),
        (0, 0, r1, r1, [], True),
        (0, 1, r1, r2, [], True),
        (1, 1, r2, r2, [], True),
        (1, 0, r1, r2, [], False),
        (2, 1, r1, r2, [], False),
        (1, 2, r1, r2, [], False),
        (1, 1, empty, r2, [], False),
        (0, 0, empty, empty, [empty], False),
        (0, 1, empty, empty, [empty], False),
        (1, 1, empty, empty, [empty], False),
    ]
    for m, n, old, new, proof, ok in cases:
        assert rfc6962.verify_consistency(m, n, proof, old, new) is ok, (m, n, proof)
    for index, size in ((0, 0), (0, 1), (1, 0), (2, 1)):
        assert not rfc6962.verify_inclusion(some, index, size, [], b"")
        assert not rfc6962.verify_inclusion(b"", index, size, [], empty)
        assert not rfc6962.verify_inclusion(some, index, size, [], empty)


# --- C2SP signed notes: golang.org/x/mod/sumdb/note -------------------------------------------------

PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_B64 = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
ENOCH_B64 = "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ="


def _line(name: str, b64: str) -> str:
    return f"\u2014 {name} {b64}\n"


PETER_SIG, ENOCH_SIG = _line("PeterNeumann", PETER_B64), _line("EnochRoot", ENOCH_B64)
# Go's TestNewVerifier: keys of the wrong length or algorithm, each with a key hash adjusted to match.
GO_BAD_VKEYS = [
    "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
    "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
]
# Go's TestOpen: encoded messages that are "malformed note".
GO_BAD_MESSAGES = [
    TEXT,
    TEXT + "\n",
    TEXT + "\n" + PETER_SIG[:-1],
    "\x01" + TEXT + "\n" + PETER_SIG,
    TEXT + "\n" + _line("Bad Name", PETER_B64)[:-1],
    TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
]


def test_go_keys_and_signatures() -> None:
    peter, enoch = note.parse_verifier_key(PETER_VKEY), note.parse_verifier_key(ENOCH_VKEY)
    assert (peter.name, peter.key_id.hex(), enoch.key_id.hex()) == ("PeterNeumann", "c74f20a3", "af0cfe78")
    # Only Peter known: Enoch's signature is ignored, Peter's verifies.
    opened, verified = note.open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [peter])
    assert opened.text == TEXT and verified == [peter]
    assert [s.name for s in opened.signatures] == ["PeterNeumann", "EnochRoot"]
    assert note.open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [peter, enoch])[1] == [peter, enoch]
    with pytest.raises(note.NoteError, match="no signature by a known key"):
        note.open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [])
    with pytest.raises(note.NoteError, match="does not verify"):  # Go: "invalid signature for key"
        note.open_note(TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:], [peter])
    with pytest.raises(note.NoteError, match="too many"):
        note.open_note(TEXT + "\n" + PETER_SIG * 101, [peter])
    # Go: a known key's duplicated signatures and an unknown key's corrupt one are fine.
    enoch_abcd = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    assert note.open_note(TEXT + "\n" + PETER_SIG * 2 + ENOCH_SIG * 2 + enoch_abcd, [peter])[1] == [peter]
    seed = base64.b64decode(PETER_SKEY.split("+", 4)[4])[1:]
    assert (
        note.sign_note(TEXT, "PeterNeumann", Ed25519PrivateKey.from_private_bytes(seed))
        == TEXT + "\n" + PETER_SIG
    )


@pytest.mark.parametrize("vkey", GO_BAD_VKEYS)
def test_go_bad_verifier_keys_are_refused_by_both(vkey: str) -> None:
    with pytest.raises(note.NoteError):
        note.parse_verifier_key(vkey)
    with pytest.raises(CheckpointError):
        parse_public_key_text(vkey)


@pytest.mark.parametrize("message", GO_BAD_MESSAGES)
def test_go_malformed_notes_are_refused_by_all_three(message: str, tmp_path: Path) -> None:
    with pytest.raises(note.NoteError):
        note.open_note(message, [note.parse_verifier_key(PETER_VKEY)])
    name, key = parse_public_key_text(PETER_VKEY)
    with pytest.raises(CheckpointError, match="malformed"):
        parse_and_verify_note(message, name, key)
    bundle = bundle_dir(tmp_path, message, PETER_VKEY)
    with pytest.raises(bundle_verify.Fail):
        bundle_verify._parse_checkpoints(bundle, bundle_verify._load_public_key(bundle, None))


def test_ours_verifies_the_go_signature_and_only_then_refuses_the_body(tmp_path: Path) -> None:
    """The Go note's text is not a checkpoint: ours must get past the signature (so the signature
    verified) and then refuse the body; with one changed byte it must refuse the signature."""
    name, key = parse_public_key_text(PETER_VKEY)
    assert key_hash(name, key).hex() == "c74f20a3"
    with pytest.raises(CheckpointError, match="malformed checkpoint"):
        parse_and_verify_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, name, key)
    with pytest.raises(CheckpointError, match="bad signature"):
        parse_and_verify_note(TEXT.replace("answer", "Answer") + "\n" + PETER_SIG, name, key)
    bundle = bundle_dir(tmp_path, TEXT + "\n" + PETER_SIG + ENOCH_SIG, PETER_VKEY)
    with pytest.raises(bundle_verify.Fail, match="malformed checkpoint body"):
        bundle_verify._parse_checkpoints(bundle, bundle_verify._load_public_key(bundle, None))


# --- A real checkpoint: sum.golang.org, cosigned (transparency-dev/formats log/note_test.go) ----------

SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
SUMDB_NOTE = "go.sum database tree\n6476701\nmb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n\n" + _line(
    "sum.golang.org",
    "Az3grsLX85Gz+s1SiTbgkuqxgItqFq7gsMUEyVnrsa9LM7Us9S+1xbFIGu95949rj4nPRYfvimWEPWL+o3GeoWwOoAw=",
)
WITNESS_B64 = "8TqG25yWGFLdT7WPf/WoyeG3LwqtkXP+8S3yykOVm6EMh4hPgCke6eSVPU4BdtXNMPJBXKF+UpDbGgCdcpR8SVSoqAU="
WITNESSES = {  # verifier key -> its cosignature line
    "monkeys+db4d9f7e+AULaJMvTtDLHPUcUrjdDad9vDlh/PTfC2VV60JUtCfWT": _line(
        "monkeys",
        "202ffh9ve46Mqbhuyb4wnC2Pwdan5EsXQym/tF1ggXJqhjGosU4T5intH4iKMRgDLxrnXuIjRaU2NbvAnaepM6Y+8ww=",
    ),
    "bananas+cf639f13+AaPjhFnPCQnid/Ql32KWhmh+uk72FVRfK+2DLmO3BI3M": _line(
        "bananas",
        "z2OfE+2bbsBZ7NLgfuslc0v7NFW2QyexJ7fhePpoL2N/P7N/COd5S+JNHbQEAlYzz2C5sg0E+x/MggS1mDR6t3/9rQw=",
    ),
    "witness+f13a86db+AdYV1Ztajd9BvyjP2HgpwrqYL6TjOwIjGMOq8Bu42xbN": _line("witness", WITNESS_B64),
}


def test_real_sum_golang_org_checkpoint_with_cosignatures() -> None:
    log = note.parse_verifier_key(SUMDB_VKEY)
    checkpoint = note.open_checkpoint(SUMDB_NOTE, log, origin="go.sum database tree")
    assert (checkpoint.tree_size, base64.b64encode(checkpoint.root_hash).decode()) == (
        6476701,
        "mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=",
    )
    with pytest.raises(note.NoteError, match="origin"):
        note.open_checkpoint(SUMDB_NOTE, log, origin="Go rocks but I might have the wrong ID")
    cosigned = SUMDB_NOTE + "".join(WITNESSES.values())
    # The same witness signature under names nobody knows: ignored.
    cosigned += _line("random1", WITNESS_B64) + _line("random2", WITNESS_B64)
    witnesses = [note.parse_verifier_key(v) for v in WITNESSES]
    _, verified = note.open_note(cosigned, [log, *witnesses])
    assert [k.name for k in verified] == ["sum.golang.org", "monkeys", "bananas", "witness"]
    assert note.open_checkpoint(cosigned, log).tree_size == 6476701
    # Ours checks the same signature (then refuses the body: no chain and time lines).
    name, key = parse_public_key_text(SUMDB_VKEY)
    with pytest.raises(CheckpointError, match="malformed checkpoint"):
        parse_and_verify_note(cosigned, name, key)
    with pytest.raises(CheckpointError, match="bad signature"):
        parse_and_verify_note(cosigned.replace("6476701", "6476702"), name, key)


def test_tlog_checkpoint_body_rules() -> None:
    """tlog-checkpoint's note text rules, with transparency-dev/formats TestUnmarshalLogState cases."""
    root = base64.b64encode(bytes(32)).decode()
    assert note.parse_checkpoint(f"Log\n123\n{root}\n").tree_size == 123
    assert note.parse_checkpoint(f"Log\n0\n{root}\nlots\nof\nlines\n").extensions == ["lots", "of", "lines"]
    for bad in [
        "Head\n9944\n",
        f"\n9944\n{root}\n",
        f"Log\n123\n{root}",
        f"Log\nbananas\n{root}\n",
        f"Log\n-34\n{root}\n",
        f"Log\n0123\n{root}\n",
        f"Log\n\u0661\n{root}\n",  # an Arabic-Indic digit is not ASCII decimal
        "Log\n123\nThisIsn'tBase64\n",
        "Log\n123\nYmFuYW5hcw==\n",  # base64, but not a 32-byte root
        f"Log\n123\n{root}\n\nempty extension line above\n",
    ]:
        with pytest.raises(note.NoteError):
            note.parse_checkpoint(bad)
