"""C2SP signed-note checkpoints: Go reference vector, round trip, tamper and key checks."""

from __future__ import annotations

import base64
import hashlib
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.ledger.checkpoint import (
    CheckpointError,
    format_checkpoint,
    key_hash,
    key_name_for,
    load_or_create_signing_key,
    parse_and_verify_note,
    parse_public_key_text,
    public_key_bytes,
    public_key_text,
    sign_note,
    split_note,
)

# golang.org/x/mod/sumdb/note reference vector (note.go package documentation and note_test.go).
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
)
GO_SIG = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
GO_NOTE = GO_TEXT + "\n\u2014 PeterNeumann " + GO_SIG + "\n"
ROOT = bytes(range(32))
CHAIN = bytes(range(32, 64))
WHEN = datetime(2026, 5, 9, 7, 35, 25, 123456, tzinfo=UTC)


def _go_private_key() -> Ed25519PrivateKey:
    blob = base64.b64decode(GO_SKEY.split("+", 4)[4])
    assert blob[0] == 1
    return Ed25519PrivateKey.from_private_bytes(blob[1:])


def test_key_hash_hand_checked() -> None:
    key = _go_private_key()
    raw = public_key_bytes(key.public_key())
    assert raw == base64.b64decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")[1:]
    by_hand = hashlib.sha256(b"PeterNeumann" + b"\x0a" + b"\x01" + raw).digest()[:4]
    assert by_hand.hex() == "c74f20a3"  # the hash published in the Go vkey
    assert key_hash("PeterNeumann", raw) == by_hand
    assert key_hash("PeterNeumann", key.public_key()) == by_hand


def test_reproduces_the_go_signed_note_byte_for_byte() -> None:
    key = _go_private_key()
    assert sign_note(GO_TEXT, "PeterNeumann", key) == GO_NOTE  # Ed25519 is deterministic
    assert public_key_text("PeterNeumann", key.public_key()) == GO_VKEY
    name, _ = parse_public_key_text(GO_VKEY)
    assert name == "PeterNeumann"
    body, sigs = split_note(GO_NOTE)
    assert body == GO_TEXT and sigs[0][0] == "PeterNeumann"


def test_vkey_with_plus_in_base64() -> None:
    # transparency-dev/formats test key whose base64 contains a '+'.
    name, _ = parse_public_key_text("TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6")
    assert name == "TEST"
    with pytest.raises(CheckpointError, match="key hash"):
        parse_public_key_text("TEST+7997405d+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6")


def test_checkpoint_round_trip() -> None:
    key = Ed25519PrivateKey.generate()
    name = key_name_for("coding-audit")
    body = format_checkpoint("coding-audit", 42, ROOT, CHAIN, WHEN)
    assert body == (
        f"coding-audit\n42\n{base64.b64encode(ROOT).decode()}\nchain {CHAIN.hex()}\n"
        "time 2026-05-09T07:35:25.123456Z\n"
    )
    note = sign_note(body, name, key)
    assert note.startswith(body + "\n\u2014 coding-audit ")
    cp = parse_and_verify_note(note, name, key.public_key())
    assert (cp.origin, cp.tree_size, cp.root_hash, cp.chain_hash, cp.time) == (
        "coding-audit",
        42,
        ROOT,
        CHAIN,
        WHEN,
    )


def test_host_prefixed_origin_and_cosignature_ignored() -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    body = format_checkpoint("audit.example.org/coding-audit", 0, ROOT, bytes(32), WHEN)
    note = sign_note(body, "audit.example.org/coding-audit", key)
    cosigned = note + sign_note(body, "witness", other).split("\n\n", 1)[1]
    cp = parse_and_verify_note(cosigned, "audit.example.org/coding-audit", key.public_key())
    assert cp.tree_size == 0


def _signed() -> tuple[str, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    return sign_note(format_checkpoint("coding-audit", 7, ROOT, CHAIN, WHEN), "coding-audit", key), key


@pytest.mark.parametrize(
    ("old", "new"),
    [("\n7\n", "\n8\n"), ("chain 20", "chain 21"), ("coding-audit\n", "coding-audyt\n"), ("25.1", "26.1")],
)
def test_tampered_body_fails(old: str, new: str) -> None:
    note, key = _signed()
    with pytest.raises(CheckpointError, match="bad signature"):
        parse_and_verify_note(note.replace(old, new, 1), "coding-audit", key.public_key())


def test_wrong_key_and_wrong_name() -> None:
    note, _ = _signed()
    other = Ed25519PrivateKey.generate()
    with pytest.raises(CheckpointError, match="wrong key: signature by 'coding-audit' has key hash"):
        parse_and_verify_note(note, "coding-audit", other.public_key())
    with pytest.raises(CheckpointError, match="not signed by 'someone-else'"):
        parse_and_verify_note(note, "someone-else", other.public_key())


def test_forged_signature_with_right_key_hash() -> None:
    note, key = _signed()
    body, sigs = split_note(note)
    blob = sigs[0][1][:4] + bytes(64)
    forged = f"{body}\n\u2014 coding-audit {base64.b64encode(blob).decode()}\n"
    with pytest.raises(CheckpointError, match="bad signature"):
        parse_and_verify_note(forged, "coding-audit", key.public_key())


@pytest.mark.parametrize(
    "mangle",
    [
        lambda n: n.rstrip("\n"),
        lambda n: n.replace("\n\n", "\n"),
        lambda n: n.replace("\u2014 ", "-- "),
        lambda n: n.split("\n\n")[0] + "\n\n",
        lambda n: n.replace("coding-audit A", "coding-audit !A").replace("coding-audit ", "coding-audit %"),
    ],
)
def test_malformed_notes(mangle: object) -> None:
    note, key = _signed()
    with pytest.raises(CheckpointError, match="malformed"):
        parse_and_verify_note(mangle(note), "coding-audit", key.public_key())  # type: ignore[operator]


def test_malformed_body_even_if_signed() -> None:
    key = Ed25519PrivateKey.generate()
    for body in ["coding-audit\n07\nAAAA\n", "coding-audit\n1\n" + base64.b64encode(ROOT).decode() + "\n"]:
        note = sign_note(body, "coding-audit", key)
        with pytest.raises(CheckpointError, match="malformed checkpoint"):
            parse_and_verify_note(note, "coding-audit", key.public_key())


def test_key_file_created_0600_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit-signing.key"
    key = load_or_create_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    again = load_or_create_signing_key(path)
    assert public_key_bytes(again.public_key()) == public_key_bytes(key.public_key())


def test_key_file_with_another_key_type_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = tmp_path / "k.pem"
    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(CheckpointError, match="Ed25519"):
        load_or_create_signing_key(path)


def test_invalid_key_names() -> None:
    key = Ed25519PrivateKey.generate()
    for bad in ["", "a b", "a+b", "coding-audit\n"]:
        with pytest.raises(CheckpointError, match="invalid key name"):
            sign_note("x\n", bad, key)
