"""Checkpoints as C2SP signed notes (https://c2sp.org/signed-note, https://c2sp.org/tlog-checkpoint).

A checkpoint note looks like this (every line ends with ``\\n``)::

    coding-audit                      <- origin (the log id, optionally host-prefixed)
    1234                              <- tree size (decimal, no leading zeros)
    <base64 RFC 6962 root hash>
    chain <hex chain hash of seq tree_size-1>
    time 2026-05-09T07:35:25.123456Z
                                      <- blank line ends the body
    — <key name> <base64(4-byte key hash || 64-byte Ed25519 signature)>

The signature covers the body: every byte up to and including the newline before the blank line.
Key hash = SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)[:4].

Public keys are exported in the C2SP *vkey* format ``<name>+<8 hex key hash>+<base64(0x01 || pubkey)>``
(one line), the form Go's ``golang.org/x/mod/sumdb/note.NewVerifier`` accepts.

The key name defaults to the origin (``key_name_for(origin)``); pass another name to rotate keys.
Key names must be non-empty and contain no whitespace or ``+``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.ledger.chain import rfc3339

ED25519_ALG = b"\x01"
SIG_PREFIX = "\u2014 "  # em dash and a space
_NAME_RE = re.compile(r"^[^\s+]+$")
_SIZE_RE = re.compile(r"^(0|[1-9][0-9]*)$")
_HEX32_RE = re.compile(r"^[0-9a-f]{64}$")


class CheckpointError(ValueError):
    """A note that is malformed, signed by another key, or whose signature does not verify."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    tree_size: int
    root_hash: bytes
    chain_hash: bytes
    time: datetime


def key_name_for(origin: str) -> str:
    """The default key name convention: the origin itself."""
    _check_name(origin)
    return origin


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise CheckpointError(f"invalid key name {name!r}: must be non-empty, no whitespace and no '+'")


def public_key_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_hash(name: str, public_key: bytes | Ed25519PublicKey) -> bytes:
    """First 4 bytes of SHA-256(name || 0x0A || 0x01 || 32-byte public key)."""
    raw = public_key if isinstance(public_key, bytes) else public_key_bytes(public_key)
    if len(raw) != 32:
        raise CheckpointError("an Ed25519 public key is 32 bytes")
    return hashlib.sha256(name.encode() + b"\n" + ED25519_ALG + raw).digest()[:4]


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """Read a PEM PKCS#8 Ed25519 key, creating it (mode 0600, never overwriting) if missing."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race: use its key
            return load_or_create_signing_key(path)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        return key
    loaded = serialization.load_pem_private_key(data, password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise CheckpointError(f"{path} does not hold an Ed25519 private key")
    return loaded


def public_key_text(name: str, public_key: Ed25519PublicKey) -> str:
    """C2SP vkey: ``<name>+<hex key hash>+<base64(0x01 || public key)>`` (no trailing newline)."""
    _check_name(name)
    raw = public_key_bytes(public_key)
    return f"{name}+{key_hash(name, raw).hex()}+{base64.b64encode(ED25519_ALG + raw).decode()}"


def parse_public_key_text(text: str) -> tuple[str, Ed25519PublicKey]:
    """Inverse of :func:`public_key_text`; checks the embedded key hash."""
    parts = text.strip().split("+", 2)  # the base64 may itself contain "+"
    if len(parts) != 3:
        raise CheckpointError("malformed vkey: expected <name>+<hex hash>+<base64 key>")
    name, hash_hex, b64 = parts
    _check_name(name)
    try:
        blob = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CheckpointError("malformed vkey: bad base64 key") from exc
    if len(blob) != 33 or blob[:1] != ED25519_ALG:
        raise CheckpointError("malformed vkey: not an Ed25519 key")
    if key_hash(name, blob[1:]).hex() != hash_hex.lower():
        raise CheckpointError("malformed vkey: key hash does not match the key")
    return name, Ed25519PublicKey.from_public_bytes(blob[1:])


def format_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise CheckpointError("checkpoint time must be timezone-aware")
    return rfc3339(moment)


def format_checkpoint(
    origin: str, tree_size: int, root_hash: bytes, chain_hash: bytes, time: datetime
) -> str:
    """The note body (ends with a newline)."""
    if not origin or "\n" in origin or origin != origin.strip():
        raise CheckpointError("origin must be one non-empty line without surrounding spaces")
    if tree_size < 0 or len(root_hash) != 32 or len(chain_hash) != 32:
        raise CheckpointError("tree size must be >= 0 and hashes 32 bytes")
    return (
        f"{origin}\n{tree_size}\n{base64.b64encode(root_hash).decode()}\n"
        f"chain {chain_hash.hex()}\ntime {format_time(time)}\n"
    )


def sign_note(body: str, key_name: str, private_key: Ed25519PrivateKey) -> str:
    """Body + blank line + one signature line."""
    _check_name(key_name)
    if not body.endswith("\n") or "\n\n" in body:
        raise CheckpointError("note body must end with a newline and contain no blank line")
    khash = key_hash(key_name, private_key.public_key())
    sig = private_key.sign(body.encode())
    return f"{body}\n{SIG_PREFIX}{key_name} {base64.b64encode(khash + sig).decode()}\n"


def split_note(text: str) -> tuple[str, list[tuple[str, bytes]]]:
    """(body, [(key name, 4-byte hash || signature)]) without verifying anything."""
    if not text.endswith("\n"):
        raise CheckpointError("malformed note: must end with a newline")
    cut = text.rfind("\n\n")
    if cut < 0:
        raise CheckpointError("malformed note: no blank line between body and signatures")
    body, sig_text = text[: cut + 1], text[cut + 2 :]
    sigs: list[tuple[str, bytes]] = []
    for line in sig_text.splitlines():
        if not line.startswith(SIG_PREFIX):
            raise CheckpointError(f"malformed note: signature line {line[:40]!r} does not start with '— '")
        fields = line[len(SIG_PREFIX) :].split(" ")
        if len(fields) != 2:
            raise CheckpointError("malformed note: signature line must be '— <name> <base64>'")
        try:
            blob = base64.b64decode(fields[1], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CheckpointError("malformed note: signature is not base64") from exc
        if len(blob) < 5:
            raise CheckpointError("malformed note: signature too short")
        sigs.append((fields[0], blob))
    if not sigs:
        raise CheckpointError("malformed note: no signature lines")
    return body, sigs


def parse_checkpoint_body(body: str) -> Checkpoint:
    lines = body.split("\n")[:-1]
    if len(lines) < 3:
        raise CheckpointError("malformed checkpoint: needs origin, tree size and root hash lines")
    origin, size_text, root_b64, *extensions = lines
    if not origin:
        raise CheckpointError("malformed checkpoint: empty origin")
    if not _SIZE_RE.match(size_text):
        raise CheckpointError(f"malformed checkpoint: tree size {size_text[:30]!r} is not a decimal number")
    try:
        root = base64.b64decode(root_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CheckpointError("malformed checkpoint: root hash is not base64") from exc
    if len(root) != 32:
        raise CheckpointError("malformed checkpoint: root hash is not 32 bytes")
    ext: dict[str, str] = {}
    for line in extensions:
        key, _, value = line.partition(" ")
        if key in ext:
            raise CheckpointError(f"malformed checkpoint: duplicate {key!r} line")
        ext[key] = value
    chain_hex, time_text = ext.get("chain"), ext.get("time")
    if chain_hex is None or not _HEX32_RE.match(chain_hex):
        raise CheckpointError("malformed checkpoint: missing or bad 'chain <64 hex>' line")
    if time_text is None or not time_text.endswith("Z"):
        raise CheckpointError("malformed checkpoint: missing or bad 'time <RFC 3339 Z>' line")
    try:
        when = datetime.fromisoformat(time_text)
    except ValueError as exc:
        raise CheckpointError("malformed checkpoint: bad time") from exc
    return Checkpoint(origin, int(size_text), root, bytes.fromhex(chain_hex), when)


def parse_and_verify_note(text: str, key_name: str, public_key: Ed25519PublicKey) -> Checkpoint:
    """Verify the signature by ``key_name``/``public_key`` and parse the checkpoint body.

    Signatures by other keys are ignored (as signed-note allows) but at least one must be ours.
    """
    body, sigs = split_note(text)
    expected = key_hash(key_name, public_key)
    named = [blob for name, blob in sigs if name == key_name]
    if not named:
        found = ", ".join(sorted({name for name, _ in sigs}))
        raise CheckpointError(f"wrong key: note is not signed by {key_name!r} (signed by {found})")
    ours = [blob for blob in named if blob[:4] == expected]
    if not ours:
        raise CheckpointError(
            f"wrong key: signature by {key_name!r} has key hash {named[0][:4].hex()}, "
            f"the given public key has {expected.hex()}"
        )
    for blob in ours:
        try:
            public_key.verify(blob[4:], body.encode())
            break
        except InvalidSignature:
            continue
    else:
        raise CheckpointError(f"bad signature: note signature by {key_name!r} does not verify")
    return parse_checkpoint_body(body)
