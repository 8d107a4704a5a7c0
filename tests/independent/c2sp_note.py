"""C2SP signed notes and tlog checkpoints: a second implementation, written from the specification text
alone (https://c2sp.org/signed-note and https://c2sp.org/tlog-checkpoint, read in C2SP/C2SP
``signed-note.md`` and ``tlog-checkpoint.md``). Nothing here comes from the service (``audit``).

Signed note, as the spec states it: a text ending in a newline, a blank line, then one or more
signature lines ``— <key name> <base64 signature>`` (em dash U+2014, space, name, space, base64,
newline). The text includes its final newline but not the blank line; it may itself hold empty lines,
so the text ends at the LAST empty line. The whole note is UTF-8 with no ASCII control character but
newline. Key names are non-empty with no Unicode space and no ``+``. A signature is base64 (RFC 4648
section 4) of a 4-byte big-endian key ID and the signature bytes; for Ed25519 (type 0x01, RFC 8032)
the key ID is ``SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]`` and the signature
covers the note text. Verifiers ignore signatures from unknown keys (a key is its name AND its ID),
reject the note if a known key's signature fails, and reject it if none verifies.

Checkpoint, as tlog-checkpoint states it: the note text is at least three non-empty lines: the origin
(non-empty), the tree size (ASCII decimal, no leading zeros unless 0), the root hash (base64 of the
RFC 6962 root), then optional, non-empty extension lines.

Ed25519 itself comes from the ``cryptography`` package (RFC 8032): what is checked here is everything
the note and checkpoint formats add around it. Verifier keys use the text form of Go's
``golang.org/x/mod/sumdb/note`` (``<name>+<hex key ID>+<base64(0x01 || public key)>``), which the
C2SP spec does not define but every tool exchanges.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

EM_DASH = "\u2014"
ED25519 = 0x01
MAX_SIGNATURES = 100  # the spec asks for a limit of at least 16
_DECIMAL = re.compile(r"0|[1-9][0-9]*", re.ASCII)


class NoteError(ValueError):
    """The note (or checkpoint, or key) is malformed or does not verify."""


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: bytes  # 4 bytes, big-endian uint32
    signature: bytes


@dataclass(frozen=True)
class Note:
    text: str
    signatures: list[Signature]


@dataclass(frozen=True)
class Key:
    name: str
    public_key: bytes  # 32 bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    tree_size: int
    root_hash: bytes
    extensions: list[str] = field(default_factory=list)


def valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(ch.isspace() for ch in name)


def key_id(name: str, public_key: bytes) -> bytes:
    """SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)[:4]."""
    if len(public_key) != 32:
        raise NoteError("an Ed25519 public key is 32 bytes")
    return hashlib.sha256(name.encode("utf-8") + b"\x0a" + bytes([ED25519]) + public_key).digest()[:4]


def _b64(text: str) -> bytes:
    """Standard base64 with padding, nothing else tolerated."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise NoteError(f"not standard base64: {text[:20]!r}") from exc


def parse_verifier_key(vkey: str) -> Key:
    """``<name>+<8 hex digits key ID>+<base64(0x01 || 32-byte key)>``; the ID must match."""
    name, plus1, rest = vkey.partition("+")
    id_hex, plus2, key_b64 = rest.partition("+")
    if not (plus1 and plus2) or not valid_name(name) or not re.fullmatch(r"[0-9a-fA-F]{8}", id_hex):
        raise NoteError("malformed verifier key")
    blob = _b64(key_b64)
    if len(blob) != 33 or blob[0] != ED25519:
        raise NoteError("verifier key is not an Ed25519 key")
    key = Key(name, blob[1:])
    if key.key_id.hex() != id_hex.lower():
        raise NoteError("verifier key ID does not match the key")
    return key


def parse_note(message: bytes | str) -> Note:
    """Split a signed note into its text and signatures, checking the syntax only."""
    if isinstance(message, bytes):
        try:
            message = message.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("a note is UTF-8") from exc
    if any(ord(ch) < 0x20 and ch != "\n" for ch in message):
        raise NoteError("a note holds no control character but newline")
    if not message.endswith("\n"):
        raise NoteError("a note ends with a newline")
    cut = message.rfind("\n\n")
    if cut < 0:
        raise NoteError("no blank line before the signatures")
    text, block = message[: cut + 1], message[cut + 2 :]
    lines = block.split("\n")[:-1]  # the block ends with a newline, so the last piece is empty
    if not lines:
        raise NoteError("a note has one or more signature lines")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError("too many signatures")
    return Note(text, [_signature(line) for line in lines])


def _signature(line: str) -> Signature:
    prefix = EM_DASH + " "
    if not line.startswith(prefix):
        raise NoteError(f"signature line {line[:30]!r} does not start with an em dash and a space")
    name, space, sig_b64 = line[len(prefix) :].partition(" ")
    if not space or not valid_name(name) or " " in sig_b64:
        raise NoteError(f"signature line {line[:30]!r} is not '— <key name> <base64>'")
    blob = _b64(sig_b64)
    if len(blob) < 5:
        raise NoteError("a signature is 4 bytes of key ID and at least one byte more")
    return Signature(name, blob[:4], blob[4:])


def open_note(message: bytes | str, known: list[Key]) -> tuple[Note, list[Key]]:
    """Verify a note against the known keys; return it with the keys whose signatures verified."""
    note = parse_note(message)
    verified: list[Key] = []
    for sig in note.signatures:
        key = next((k for k in known if k.name == sig.name and k.key_id == sig.key_id), None)
        if key is None:
            continue  # unknown key: ignored, even when its name or its ID alone matches a known key
        try:
            Ed25519PublicKey.from_public_bytes(key.public_key).verify(
                sig.signature, note.text.encode("utf-8")
            )
        except InvalidSignature as exc:
            raise NoteError(f"the signature by {key.name} does not verify") from exc
        if key not in verified:
            verified.append(key)
    if not verified:
        raise NoteError("no signature by a known key")
    return note, verified


def parse_checkpoint(text: str) -> Checkpoint:
    """The checkpoint in a note's text (which ends with a newline)."""
    if not text.endswith("\n"):
        raise NoteError("the note text ends with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3 or any(not line for line in lines):
        raise NoteError("a checkpoint is at least three non-empty lines")
    origin, size, root_b64, *extensions = lines
    if not _DECIMAL.fullmatch(size):
        raise NoteError(f"tree size {size[:30]!r} is not a decimal number without leading zeros")
    root = _b64(root_b64)
    if len(root) != 32:
        raise NoteError("an RFC 6962 (SHA-256) root hash is 32 bytes")
    return Checkpoint(origin, int(size), root, extensions)


def open_checkpoint(message: bytes | str, log_key: Key, origin: str | None = None) -> Checkpoint:
    """A checkpoint signed by ``log_key`` (other signatures, such as witnesses', may be present)."""
    note, _ = open_note(message, [log_key])
    checkpoint = parse_checkpoint(note.text)
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"checkpoint origin {checkpoint.origin!r} is not {origin!r}")
    return checkpoint


def sign_note(text: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """The text, a blank line and one Ed25519 signature line (to feed other verifiers)."""
    if not text.endswith("\n") or not valid_name(name):
        raise NoteError("the text ends with a newline and the key name is valid")
    public = private_key.public_key().public_bytes_raw()
    blob = key_id(name, public) + private_key.sign(text.encode("utf-8"))
    return f"{text}\n{EM_DASH} {name} {base64.b64encode(blob).decode('ascii')}\n"
