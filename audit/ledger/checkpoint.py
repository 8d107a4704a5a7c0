"""Checkpoints as C2SP signed notes (https://c2sp.org/signed-note, https://c2sp.org/tlog-checkpoint).

A checkpoint note looks like this (every line ends with ``\\n``)::

    audit.example.org/coding-audit    <- origin (the log id, host-prefixed; "coding-audit" before)
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

The key name is configured apart from the origin (AUDIT_LOG_KEY_NAME, default the log id, which is
what notes were always signed with), as in Go's checksum database, whose notes say
``go.sum database tree`` and are signed by ``sum.golang.org``. Key names must be non-empty and
contain no whitespace or ``+``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable, Iterator
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
_TIME_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z"
)  # RFC 3339 UTC
_CONTROL_RE = re.compile(r"[\x00-\x09\x0b-\x1f]")  # signed-note: no ASCII control character but newline
MAX_SIGNATURES = 100  # signed-note asks verifiers for a limit of at least 16; Go's note package uses 100


class CheckpointError(ValueError):
    """A note that is malformed, signed by another key, or whose signature does not verify."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    tree_size: int
    root_hash: bytes
    chain_hash: bytes
    time: datetime


def key_name_for(name: str) -> str:
    """``name`` if it is a valid key name, else CheckpointError."""
    _check_name(name)
    return name


def _check_name(name: str) -> None:
    if not _NAME_RE.fullmatch(name):  # match() would let "name\n" through ($ matches before it)
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
    if _CONTROL_RE.search(text):
        raise CheckpointError("malformed note: holds a control character other than newline")
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
    if len(sigs) > MAX_SIGNATURES:
        raise CheckpointError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    return body, sigs


def parse_checkpoint_body(body: str) -> Checkpoint:
    lines = body.split("\n")[:-1]
    if len(lines) < 3:
        raise CheckpointError("malformed checkpoint: needs origin, tree size and root hash lines")
    if not all(lines):
        raise CheckpointError("malformed checkpoint: an empty line (origin or extension)")
    origin, size_text, root_b64, *extensions = lines
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
    if time_text is None or not _TIME_RE.fullmatch(time_text):
        raise CheckpointError("malformed checkpoint: missing or bad 'time <RFC 3339 Z>' line")
    try:
        when = datetime.fromisoformat(time_text)
    except ValueError as exc:
        raise CheckpointError("malformed checkpoint: bad time") from exc
    return Checkpoint(origin, int(size_text), root, bytes.fromhex(chain_hex), when)


def parse_and_verify_note(text: str, key_name: str, public_key: Ed25519PublicKey) -> Checkpoint:
    """Verify the signature by ``key_name``/``public_key`` and parse the checkpoint body.

    Signatures by other keys are ignored (as signed-note requires: a key is its name and its key hash)
    but at least one must be ours, and every signature under our name and key hash must verify (the
    spec's SHOULD, which Go's ``note.Open`` follows too).
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
        except InvalidSignature:
            raise CheckpointError(f"bad signature: note signature by {key_name!r} does not verify") from None
    return parse_checkpoint_body(body)


@dataclass(frozen=True)
class NoteEntry:
    """One note found in a file of notes: its text, or why the lines there are not a note."""

    line: int  # 1-based number of its first line
    note: str | None
    problem: str | None = None


def iter_notes(lines: Iterable[str]) -> Iterator[NoteEntry]:
    """Split a file of signed notes into notes, oldest first, without verifying signatures.

    Accepts one note, notes separated by a blank line (the witness file) or by a line holding only
    ``---`` (a bundle's ``checkpoints.txt``). ``lines`` keep their line endings, so a last line cut
    short (no newline) is reported, as are signature lines missing after a body (a deleted last line).
    """
    body: list[str] = []
    sigs: list[str] = []
    in_sigs = False
    start = 0
    number = 0

    def entry() -> NoteEntry:
        if in_sigs and sigs:
            return NoteEntry(start, "\n".join(body) + "\n\n" + "\n".join(sigs) + "\n")
        return NoteEntry(start, None, f"line {start}: a note without its signature line")

    for number, raw in enumerate(lines, start=1):
        if not raw.endswith("\n"):
            yield NoteEntry(start or number, None, f"line {number}: cut short (no newline at the end)")
            return
        line = raw[:-1]
        if line == "---" or (line == "" and in_sigs and sigs):
            if body or sigs:
                yield entry()
            body, sigs, in_sigs, start = [], [], False, 0
        elif line == "":
            if body and not in_sigs:
                in_sigs = True
            elif body or sigs:
                yield NoteEntry(start, None, f"line {number}: unexpected blank line in a note")
                body, sigs, in_sigs, start = [], [], False, 0
        elif line.startswith(SIG_PREFIX):
            if not in_sigs:
                yield NoteEntry(start or number, None, f"line {number}: a signature line without a note body")
                body, sigs, in_sigs, start = [], [], False, 0
                continue
            sigs.append(line)
        else:
            if in_sigs and sigs:  # notes written back to back
                yield entry()
                body, sigs, in_sigs, start = [], [], False, 0
            elif in_sigs:
                yield NoteEntry(start, None, f"line {number}: expected a signature line")
                body, sigs, in_sigs, start = [], [], False, 0
            start = start or number
            body.append(line)
    if body or sigs:
        yield entry()
