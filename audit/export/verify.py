#!/usr/bin/env python3
"""Offline verifier for coding-audit export bundles.

Usage::

    python verify.py BUNDLE.zip                 # verify a bundle zip
    python verify.py                            # the unpacked bundle next to this script (else the cwd)
    python verify.py --key KEY BUNDLE.zip       # also require this signing key (vkey text or a file)
    python verify.py --previous NOTE BUNDLE.zip # also prove the log only grew since an older checkpoint
    python verify.py --jobs 1 ...               # no worker processes (default: one per CPU on 4+ CPUs)
    python verify.py --strict ...               # check canonical JSON on every line of a full export

Every byte of every event is checked through its leaf and chain hash, the Merkle root and the signed
checkpoint, and every event's own ``seq`` must equal its position. Canonical form (sorted keys, no
whitespace) and the payload's ``log_id`` are format checks on top: by default they run on the first
1,000 lines and every 64th line of a full export, and on every line with ``--strict`` or in a scoped
export. The manifest is signed, so no file can be changed, added or removed, and no event dropped
from a scoped bundle, without the signature failing.

Exit status 0 and ``OK: <n> events, seq a..b, tree size N, root <base64>`` (then a ``key`` line, and a
``previous`` line per ``--previous``) when everything checks; exit status 1 and ``FAIL: <the first
problem>`` otherwise. Needs Python 3.9+ and ``cryptography``. This file is self-contained on purpose:
it must not depend on the service that produced the bundle.

The signing key: the bundle carries its own (``public_key.txt``), which proves only that the bundle
is whole. That the key is the organisation's is proved by ``--key`` (the key it published, e.g.
``GET /api/v1/audit/public-key``) or by ``--previous`` with a note obtained earlier from elsewhere.

Bundle format (version 2), all files at the top level of the zip:

``manifest.json``
    ``{"format_version": 2, "log_id", "scope": {...} | null, "seq_range": [first, last] | null,
    "tree_size", "event_count", "seq_digest", "checkpoint_sizes": [sizes of the notes in
    checkpoints.txt, oldest first], "files": {name: sha256 hex} (every file but manifest.json and
    manifest.sig), "key_name", "full": bool}``.
    ``seq_digest`` = hex SHA-256 over the events' seqs in events.jsonl order, each as an unsigned
    64-bit big-endian integer (8 bytes): the digest of the event set, e.g. SHA-256 of nothing for no
    events, SHA-256(00..00 00..01) for seqs 0 and 1.
``manifest.sig``
    a C2SP signed note by the checkpoint key (the same key, name and signature line as the
    checkpoints) whose body is exactly three lines::

        audit-export-manifest/v2
        <log_id>
        sha256 <hex SHA-256 of the exact bytes of manifest.json>

    The first line keeps it from ever passing for a checkpoint (whose second line is a tree size).
``events.jsonl``
    one ledger payload per line, byte for byte as hashed (canonical JSON, each with its ``seq``)
``chain_hashes.bin`` (full exports)
    the ledger's stored 32-byte chain hash of each event, concatenated in events.jsonl order; lets the
    verifier name the first altered event (the signed checkpoint still decides)
``checkpoints.txt``
    one or more C2SP signed notes, oldest first, separated by a line containing only ``---``; the LAST
    one covers the bundle (its tree size equals the manifest's). Earlier ones are checkpoints the
    bundle proves the log grew from: recomputed from the events in a full export, through
    consistency.json in a scoped one.
``public_key.txt``
    the signing key in C2SP vkey form ``<name>+<8 hex key hash>+<base64(0x01 || Ed25519 key)>``
``proofs.json`` (scoped exports)
    ``{"<seq>": [hex, ...]}``: RFC 9162 inclusion proof of each event's leaf in the last checkpoint
``consistency.json`` (scoped exports)
    ``{"<m>": [hex, ...]}``: RFC 9162 section 2.1.4 consistency proof from the tree of size m (each
    earlier checkpoint) to the last checkpoint's tree
``*.csv``, ``*.pdf``
    reports (integrity-checked through the signed manifest)
``verify.py``
    this script

``--previous NOTE``: NOTE holds a checkpoint signed by the same key (e.g. one kept from an earlier
bundle or from ``GET /api/v1/audit/checkpoint``). A full bundle recomputes that tree's root and chain
hash from its events; a scoped bundle must carry a consistency proof from its tree size (ask the
export for ``previous: [size]``; by default an export links the user's earlier exports).

Hashes (fixed): ``leaf = SHA-256(0x00 || payload)``; ``chain[n] = SHA-256(0x02 || chain[n-1] ||
uint64_be(n) || leaf[n])`` with ``chain[-1]`` = 32 zero bytes; the Merkle tree head is RFC 6962
(node = SHA-256(0x01 || left || right), empty tree = SHA-256("")).
A full export must hold seq 0..N-1 for the checkpoint's tree size N; its recomputed chain hash and
Merkle root must equal the checkpoint's ``chain`` line and root hash.
"""

from __future__ import annotations

import array
import base64
import binascii
import gc
import hashlib
import json
import multiprocessing
import operator
import os
import re
import struct
import sys
import zipfile
from collections.abc import Iterator
from typing import IO, Any

FORMAT_VERSION = 2
MANIFEST_NOTE_HEADER = "audit-export-manifest/v2"
UNLISTED = ("manifest.json", "manifest.sig")  # the manifest lists every other file
SEPARATOR = "---"
SIG_PREFIX = "\u2014 "
MAX_SIGNATURES = 100  # C2SP signed-note: verifiers limit signatures (at least 16); Go allows 100
EMPTY_ROOT = hashlib.sha256(b"").digest()
ZERO = bytes(32)
BLOCK = 1 << 20  # bytes of events.jsonl handed to a worker at a time
PARALLEL_MIN_BYTES = 8 << 20
PARALLEL_MIN_CPUS = 4

_sha256 = hashlib.sha256


class Fail(Exception):
    """The first problem found; its text follows ``FAIL: ``."""


# --------------------------------------------------------------------------------------------------
# Bundle access: a zip file or an unpacked directory


class Bundle:
    def __init__(self, path: str) -> None:
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        if os.path.isdir(path):
            names = []
            for entry in sorted(os.listdir(path)):
                if entry == "__pycache__" or entry.startswith("."):
                    continue
                names.append(entry + ("/" if os.path.isdir(os.path.join(path, entry)) else ""))
            self.names = names
        else:
            try:
                self.zip = zipfile.ZipFile(path)
            except (OSError, zipfile.BadZipFile) as exc:
                raise Fail(f"{path} is not a readable zip file ({exc})") from None
            self.names = [info.filename for info in self.zip.infolist()]
            dupes = sorted({n for n in self.names if self.names.count(n) > 1})
            if dupes:
                raise Fail(f"zip holds more than one entry named {dupes[0]}")

    def open(self, name: str) -> IO[bytes]:
        if name not in self.names:
            raise Fail(f"{name} is missing")
        if self.zip is not None:
            return self.zip.open(name)
        return open(os.path.join(self.path, name), "rb")

    def read(self, name: str) -> bytes:
        with self.open(name) as fh:
            return fh.read()


# --------------------------------------------------------------------------------------------------
# Manifest and file digests


def _load_manifest(bundle: Bundle, key: Key) -> dict[str, Any]:
    """manifest.json, once manifest.sig proves these exact bytes were signed with ``key``."""
    if "manifest.json" not in bundle.names:
        raise Fail("manifest.json is missing")
    raw = bundle.read("manifest.json")
    if "manifest.sig" not in bundle.names:
        if re.search(rb'"format_version":\s*1\b', raw):
            raise Fail(
                "manifest.json is format 1, whose manifest is not signed, so events could be cut from "
                "the bundle unnoticed: export the bundle again"
            )
        raise Fail("manifest.sig is missing")
    signed_log = _check_manifest_signature(bundle.read("manifest.sig"), raw, key)
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise Fail(f"manifest.json is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise Fail("manifest.json is not a JSON object")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise Fail(f"manifest.json: unsupported format_version {manifest.get('format_version')!r}")
    types: dict[str, Any] = {
        "log_id": str,
        "tree_size": int,
        "event_count": int,
        "seq_digest": str,
        "checkpoint_sizes": list,
        "files": dict,
        "key_name": str,
        "full": bool,
        "scope": (dict, type(None)),
        "seq_range": (list, type(None)),
    }
    for field, kind in types.items():
        if field not in manifest:
            raise Fail(f"manifest.json: missing field {field!r}")
        value = manifest[field]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise Fail(f"manifest.json: field {field!r} has the wrong type")
    if manifest["tree_size"] < 0 or manifest["event_count"] < 0:
        raise Fail("manifest.json: negative tree_size or event_count")
    if not re.fullmatch(r"[0-9a-f]{64}", manifest["seq_digest"]):
        raise Fail("manifest.json: seq_digest is not a hex SHA-256")
    if not all(_is_int(s) for s in manifest["checkpoint_sizes"]):
        raise Fail("manifest.json: checkpoint_sizes must be integers")
    seq_range = manifest["seq_range"]
    if seq_range is not None and not (len(seq_range) == 2 and all(_is_int(s) for s in seq_range)):
        raise Fail("manifest.json: seq_range must be [first, last] or null")
    for name, digest in manifest["files"].items():
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise Fail(f"manifest.json: bad sha256 for {name}")
    if manifest["log_id"] != signed_log:
        raise Fail(
            f"manifest.json names log {manifest['log_id']!r} but manifest.sig signs log {signed_log!r}"
        )
    if manifest["key_name"] != key.name:
        raise Fail(f"public_key.txt names key {key.name!r} but manifest.json says {manifest['key_name']!r}")
    return manifest


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_manifest_signature(sig: bytes, raw: bytes, key: Key) -> str:
    """manifest.sig must be our key's signed note over the SHA-256 of these manifest bytes; returns
    the log id it names."""
    try:
        text = sig.decode("utf-8")
    except UnicodeDecodeError:
        raise Fail("manifest.sig is not UTF-8") from None
    body = _verified_body(text, "manifest.sig", key)
    lines = body.split("\n")[:-1]
    if len(lines) != 3 or lines[0] != MANIFEST_NOTE_HEADER or not lines[2].startswith("sha256 "):
        raise Fail(
            f"manifest.sig is not a signed export manifest (its first line must be {MANIFEST_NOTE_HEADER})"
        )
    if lines[2] != "sha256 " + _sha256(raw).hexdigest():
        raise Fail(
            "manifest.sig does not sign this manifest.json (its sha256 differs): the manifest was changed"
        )
    return lines[1]


def _check_files(bundle: Bundle, manifest: dict[str, Any], streamed: set[str]) -> None:
    """Every listed file exists with its digest (except those checked while streaming); no extras."""
    files: dict[str, str] = manifest["files"]
    required = {"events.jsonl", "checkpoints.txt", "public_key.txt"}
    required.update({"chain_hashes.bin"} if manifest["full"] else {"proofs.json", "consistency.json"})
    for name in sorted(required):
        if name not in files:
            raise Fail(f"manifest.json does not list {name}")
    for name in sorted(files):
        if name in UNLISTED or "/" in name or "\\" in name:
            raise Fail(f"manifest.json lists an invalid file name {name!r}")
        if name not in bundle.names:
            raise Fail(f"{name} is listed in manifest.json but missing from the bundle")
    for name in bundle.names:
        if name not in UNLISTED and name not in files:
            raise Fail(f"{name} is in the bundle but not listed in manifest.json")
    for name in sorted(files):
        if name in streamed:
            continue
        if _file_digest(bundle, name) != files[name]:
            raise Fail(f"{name}: sha256 does not match manifest.json")


def _file_digest(bundle: Bundle, name: str) -> str:
    h = _sha256()
    with bundle.open(name) as fh:
        for block in iter(lambda: fh.read(BLOCK), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------
# Keys and signed notes (C2SP signed-note / tlog-checkpoint)


def _key_hash(name: str, raw: bytes) -> bytes:
    return _sha256(name.encode() + b"\n\x01" + raw).digest()[:4]


class Key:
    """A C2SP vkey: name, 4-byte key hash and the Ed25519 public key."""

    def __init__(self, name: str, khash: bytes, raw: bytes) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        self.name, self.khash, self.raw = name, khash, raw
        self.public_key = Ed25519PublicKey.from_public_bytes(raw)

    @property
    def text(self) -> str:
        encoded = base64.b64encode(b"\x01" + self.raw).decode()
        return f"{self.name}+{self.khash.hex()}+{encoded}"


def _parse_vkey(text: str, where: str) -> Key:
    parts = text.strip().split("+", 2)
    if len(parts) != 3:
        raise Fail(f"{where} is not a vkey (<name>+<hex hash>+<base64 key>)")
    name, hash_hex, b64 = parts
    try:
        blob = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise Fail(f"{where}: the key is not base64") from None
    if len(blob) != 33 or blob[0] != 1:
        raise Fail(f"{where}: not an Ed25519 key")
    khash = _key_hash(name, blob[1:])
    if khash.hex() != hash_hex.lower():
        raise Fail(f"{where}: the key hash does not match the key")
    return Key(name, khash, blob[1:])


def _load_public_key(bundle: Bundle, pinned: Key | None) -> Key:
    key = _parse_vkey(bundle.read("public_key.txt").decode("utf-8", "replace"), "public_key.txt")
    if pinned is not None and (pinned.name, pinned.raw) != (key.name, key.raw):
        raise Fail(f"public_key.txt holds key {key.text}, not the key given with --key ({pinned.text})")
    return key


class Checkpoint:
    def __init__(self, origin: str, tree_size: int, root: bytes, chain: bytes, time: str) -> None:
        self.origin, self.tree_size, self.root, self.chain, self.time = origin, tree_size, root, chain, time
        self.label = f"checkpoint {tree_size}"


def _split_notes(text: str) -> list[str]:
    """Notes separated by a line holding only ``---`` (or one note)."""
    notes: list[str] = []
    current: list[str] = []
    for line in text.splitlines(keepends=True):
        if line.rstrip("\r\n") == SEPARATOR:
            notes.append("".join(current))
            current = []
        else:
            current.append(line)
    notes.append("".join(current))
    return notes


def _verified_body(note: str, where: str, key: Key) -> str:
    """The body of a signed note, once every signature by ``key`` verifies over it (C2SP signed-note,
    as Go's note.Open: one bad signature by our key refuses the note even if another is good)."""
    from cryptography.exceptions import InvalidSignature

    cut = note.rfind("\n\n")
    if not note.endswith("\n") or cut < 0:
        raise Fail(f"{where} is not a signed note (body, blank line, signature lines)")
    if re.search(r"[\x00-\x09\x0b-\x1f]", note):
        raise Fail(f"{where} holds a control character other than newline")
    body, sig_lines = note[: cut + 1], note[cut + 2 :].splitlines()
    if len(sig_lines) > MAX_SIGNATURES:
        raise Fail(f"{where} has more than {MAX_SIGNATURES} signatures")
    mine = []
    for line in sig_lines:
        fields = line[len(SIG_PREFIX) :].split(" ") if line.startswith(SIG_PREFIX) else []
        if len(fields) != 2:
            raise Fail(f"{where}: malformed signature line {line[:60]!r}")
        try:
            blob = base64.b64decode(fields[1], validate=True)
        except (binascii.Error, ValueError):
            raise Fail(f"{where}: signature is not base64") from None
        if fields[0] == key.name:
            mine.append(blob)
    if not mine:
        raise Fail(f"{where} is not signed by key {key.name!r} from public_key.txt")
    ours = [blob for blob in mine if blob[:4] == key.khash]
    if not ours:
        raise Fail(
            f"{where} is signed by another key named {key.name!r} (key hash {mine[0][:4].hex()}, "
            f"public_key.txt has {key.khash.hex()})"
        )
    for blob in ours:
        try:
            key.public_key.verify(blob[4:], body.encode())
        except InvalidSignature:
            raise Fail(f"{where}: signature does not verify with public_key.txt") from None
    return body


def _parse_checkpoints(bundle: Bundle, key: Key) -> list[Checkpoint]:
    try:
        text = bundle.read("checkpoints.txt").decode("utf-8")
    except UnicodeDecodeError:
        raise Fail("checkpoints.txt is not UTF-8") from None
    notes = _split_notes(text)
    result = []
    for number, note in enumerate(notes, start=1):
        where = f"checkpoint {number} of {len(notes)}"
        result.append(_parse_body(_verified_body(note, where, key), where))
    return result


def _load_previous(path: str, key: Key, log_id: str) -> Checkpoint:
    """An older checkpoint the auditor holds: one signed note in a file, by the bundle's key."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise Fail(f"--previous {path}: cannot read it ({exc})") from None
    notes = [n for n in _split_notes(text) if n.strip()]
    if len(notes) != 1:
        raise Fail(f"--previous {path}: expected one signed note, found {len(notes)}")
    where = f"--previous {path}"
    checkpoint = _parse_body(_verified_body(notes[0], where, key), where)
    _check_origin(checkpoint, log_id, where)
    return checkpoint


def _check_origin(cp: Checkpoint, log_id: str, where: str) -> None:
    if cp.origin != log_id and not cp.origin.endswith("/" + log_id):
        raise Fail(f"{where}: checkpoint origin {cp.origin!r} is not log {log_id!r}")


def _parse_body(body: str, where: str) -> Checkpoint:
    lines = body.split("\n")[:-1]
    if len(lines) < 5 or not all(lines) or not re.fullmatch(r"0|[1-9][0-9]*", lines[1]):
        raise Fail(f"{where}: malformed checkpoint body")
    ext = dict(line.partition(" ")[::2] for line in lines[3:])
    if len(ext) != len(lines) - 3:
        raise Fail(f"{where}: malformed checkpoint body (an extension line appears twice)")
    try:
        root = base64.b64decode(lines[2], validate=True)
        chain = bytes.fromhex(ext.get("chain", ""))
    except (binascii.Error, ValueError):
        raise Fail(f"{where}: malformed root or chain hash") from None
    if len(root) != 32 or len(chain) != 32 or "time" not in ext:
        raise Fail(f"{where}: malformed checkpoint body (root, chain and time lines)")
    return Checkpoint(lines[0], int(lines[1]), root, chain, ext["time"])


# --------------------------------------------------------------------------------------------------
# Per-line checks (run in worker processes for large bundles)


class _Fallback(Exception):
    pass


def _no_float(_text: str) -> Any:
    raise _Fallback


def _reference(line: bytes) -> dict[str, Any] | None:
    """The definition: the payload if ``line`` is exactly the canonical JSON of a JSON object."""
    try:
        obj = json.loads(line)
        again = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    except (ValueError, RecursionError):
        return None
    return obj if again == line and isinstance(obj, dict) else None


# Fast path. A line with no backslash and no control character splits on '"' into structure
# (even parts: braces, commas, colons, numbers, literals) and raw strings (odd parts). Two such lines
# whose structure is equal up to the values of nonzero digits and whose key strings are equal are
# either both canonical or both not, provided neither holds a float: value strings are written raw by
# the canonical encoder, and canonical integers stay canonical when a nonzero digit changes. So each
# distinct template is checked once with ``_reference`` (and the seq and log_id positions recorded);
# every later line of that template costs a split, a join and two dictionary lookups.
_DIGITS = bytes.maketrans(b"123456789", b"111111111")
_CONTROL = bytes(range(32))
_KEY_POSITIONS: dict[bytes, Any] = {}
_TEMPLATES: dict[tuple[bytes, Any], tuple[int, int, int]] = {}
_SEQ_AT_START = re.compile(rb":(-?[0-9]+)")


def _seq_and_log(line: bytes) -> tuple[Any, Any] | None:
    """(seq, log_id as bytes) of a canonical JSON object line, or None if the line is not canonical."""
    if b"\\" in line or line[:1] != b"{" or len(line.translate(None, _CONTROL)) != len(line):
        return _slow(line)
    parts = line.split(b'"')
    if not len(parts) & 1:
        return None  # an odd number of quotes and no escapes: not JSON
    try:
        line.decode()
    except UnicodeDecodeError:
        return None
    struct, strings = parts[::2], parts[1::2]
    shape = b'"'.join(struct).translate(_DIGITS)
    getter = _KEY_POSITIONS.get(shape)
    if getter is None:
        getter = _key_getter(struct, len(strings))
        if len(_KEY_POSITIONS) > 50_000:
            _KEY_POSITIONS.clear()
        _KEY_POSITIONS[shape] = getter
    keys = getter(strings)
    template = _TEMPLATES.get((shape, keys))
    if template is None:
        learned: tuple[Any, Any] | None = _learn(line, shape, keys, struct, strings)
        return learned
    seq_seg, seq_end, log_at = template
    return int(struct[seq_seg][1:seq_end]), strings[log_at]


SAMPLE_HEAD, SAMPLE_EVERY = 1000, 64
_UINT64 = struct.Struct(">Q")


def _key_getter(struct: list[bytes], n_strings: int) -> Any:
    at = [i for i in range(n_strings) if struct[i + 1][:1] == b":"]
    if len(at) == 1:
        return lambda strings: (strings[at[0]],)
    return operator.itemgetter(*at) if at else (lambda strings: ())


def _slow(line: bytes) -> tuple[Any, Any] | None:
    obj = _reference(line)
    if obj is None:
        return None
    log_id = obj.get("log_id")
    return obj.get("seq"), log_id.encode() if isinstance(log_id, str) else None


def _learn(line: bytes, shape: bytes, keys: Any, struct: list[bytes], strings: list[bytes]) -> Any:
    """Check a new template with the reference; remember it if it is float-free and well placed."""
    result = _slow(line)
    if result is None:
        return None
    try:
        json.loads(line, parse_float=_no_float, parse_constant=_no_float)
    except _Fallback:
        return result  # floats: canonical form is not fixed by the template; never cache
    depth, seq_seg, seq_end, log_at = 0, -1, 0, -1
    for i, text in enumerate(strings):
        seg = struct[i]
        depth += seg.count(b"{") + seg.count(b"[") - seg.count(b"}") - seg.count(b"]")
        if depth == 1 and struct[i + 1][:1] == b":":
            match = _SEQ_AT_START.match(struct[i + 1])
            if text == b"seq" and match:
                seq_seg, seq_end = i + 1, match.end()
            elif text == b"log_id" and struct[i + 1] == b":":
                log_at = i + 1
    if seq_seg < 0 or log_at < 0:
        return result
    template = (seq_seg, seq_end, log_at)
    if (int(struct[seq_seg][1:seq_end]), strings[log_at]) == result:
        if len(_TEMPLATES) > 50_000:
            _TEMPLATES.clear()
        _TEMPLATES[(shape, keys)] = template
    return result


def check_block(task: tuple[bytes, str]) -> tuple[bytes, list[int], tuple[int, str] | None]:
    """Check the lines of one block: (leaf hashes, seqs, (line offset, problem) or None).

    Stops at the first bad line; the leaves and seqs returned are those of the good lines before it.
    """
    block, log_id = task
    want_log = log_id.encode()
    lines = block.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    leaves = bytearray()
    seqs: list[int] = []
    sha256 = _sha256
    for offset, line in enumerate(lines):
        found = _seq_and_log(line)
        if found is None:
            problem = "blank line" if not line else "payload is not canonical JSON (or not a JSON object)"
            return bytes(leaves), seqs, (offset, problem)
        seq, log = found
        if type(seq) is not int:
            return bytes(leaves), seqs, (offset, "payload has no integer seq")
        if log != want_log:
            return bytes(leaves), seqs, (offset, f"payload log_id is not {log_id!r}")
        seqs.append(seq)
        leaves += sha256(b"\x00" + line).digest()
    return bytes(leaves), seqs, None


# --------------------------------------------------------------------------------------------------
# Streaming over events.jsonl


def _blocks(fh: IO[bytes], digest: Any) -> Iterator[bytes]:
    """Blocks of whole lines; every byte also goes into ``digest``."""
    rest = b""
    while True:
        data = fh.read(BLOCK)
        if not data:
            break
        digest.update(data)
        data = rest + data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest = data
            continue
        rest = data[cut:]
        yield data[:cut]
    if rest:
        yield rest + b"\n" if not rest.endswith(b"\n") else rest


class _Merkle:
    __slots__ = ("size", "stack")

    def __init__(self) -> None:
        self.stack: list[bytes] = []
        self.size = 0

    def append(self, leaf: bytes) -> None:
        stack, n, h = self.stack, self.size, leaf
        while n & 1:
            h = _sha256(b"\x01" + stack.pop() + h).digest()
            n >>= 1
        stack.append(h)
        self.size += 1

    def append_subtree(self, height: int, root: bytes) -> None:
        """Append a perfect subtree of 2**height leaves; size must be a multiple of that."""
        stack, n, h = self.stack, self.size >> height, root
        while n & 1:
            h = _sha256(b"\x01" + stack.pop() + h).digest()
            n >>= 1
        stack.append(h)
        self.size += 1 << height

    def root(self) -> bytes:
        if not self.stack:
            return EMPTY_ROOT
        h = self.stack[-1]
        for left in reversed(self.stack[:-1]):
            h = _sha256(b"\x01" + left + h).digest()
        return h


def _verify_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def _load_proofs(bundle: Bundle, name: str) -> dict[int, list[bytes]]:
    try:
        raw = json.loads(bundle.read(name))
        proofs = {int(k): [bytes.fromhex(h) for h in v] for k, v in raw.items()}
    except (ValueError, AttributeError, TypeError):
        raise Fail(f"{name} is not {{size or seq: [hex hashes]}}") from None
    if any(len(h) != 32 for proof in proofs.values() for h in proof):
        raise Fail(f"{name} holds a hash that is not 32 bytes")
    return proofs


class _Results:
    """check_block over the blocks, in order: in worker processes for big bundles."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self.pool: Any = None

    def run(self, func: Any, tasks: Iterator[Any]) -> Iterator[Any]:
        if self.jobs <= 1:
            return map(func, tasks)
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
        self.pool = ctx.Pool(self.jobs)
        results: Iterator[Any] = self.pool.imap(func, tasks, chunksize=1)
        return results

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None


def _exact_problem(line: bytes, seq: int, want_log: bytes, log_id: str) -> tuple[int | None, str] | None:
    """(seq found, problem) when a line fails the exact check, else None."""
    found = _seq_and_log(line)
    if found is None:
        return None, "blank line" if not line else "payload is not canonical JSON (or not an object)"
    got, log = found
    if type(got) is not int:
        return None, "payload has no integer seq"
    if got != seq:
        return got, f"expected seq {seq}"
    if log != want_log:
        return got, f"payload log_id is not {log_id!r}"
    return None


def check_full_block(
    task: tuple[bytes, int, str, bytes, bytes, bool],
) -> tuple[int, int, tuple[int, int | None, str] | None, list[tuple[int, bytes]], bytes]:
    """Check a block of a full export starting at seq ``start``, chain links included.

    ``stored`` holds the bundle's chain hashes for the block's lines and ``prev`` the one before, so
    each link ``chain[n] = H(0x02 || chain[n-1] || n || leaf[n])`` is checked locally; by induction
    from ``chain[-1] = 0`` the stored hashes equal the recomputed chain. Returns (start, lines ok,
    (offset, seq, problem) or None, aligned Merkle subtrees (height, root) of the good lines, last
    verified chain hash).
    """
    block, start, log_id, prev, stored, strict = task
    want_log = log_id.encode()
    lines = block.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    leaves: list[bytes] = []
    sha256, pack = _sha256, _UINT64.pack
    error: tuple[int, int | None, str] | None = None
    for i, line in enumerate(lines):
        seq = start + i
        # Sampled lines (every line with --strict) get the exact check: canonical form, seq, log_id.
        # The rest only need their own seq: in this format the top-level "seq" is the last key of that
        # name and a key follows it, so the text up to the next comma is the number. Anything unusual
        # takes the exact path. Integrity does not rest on this: every byte is bound by the hashes.
        at = -1 if strict or seq < SAMPLE_HEAD or not seq % SAMPLE_EVERY else line.rfind(b'"seq":')
        if at < 0 or not line.startswith(b'"seq":%d,' % seq, at):
            problem = _exact_problem(line, seq, want_log, log_id)
            if problem is not None:
                error = (i, *problem)
                break
        leaf = sha256(b"\x00" + line).digest()
        chained = sha256(b"\x02" + prev + pack(seq) + leaf).digest()
        prev = stored[32 * i : 32 * i + 32]
        if chained != prev:
            error = (i, seq, "chain hash mismatch (event or chain_hashes.bin altered)")
            break
        leaves.append(leaf)
    return start, len(leaves), error, _subtrees(leaves, start), prev if leaves else task[3]


def _subtrees(leaves: list[bytes], start: int) -> list[tuple[int, bytes]]:
    """Split leaves start.. into maximal aligned perfect subtrees: [(height, root)], left to right."""
    out = []
    i, n = 0, len(leaves)
    while i < n:
        pos = start + i
        size = pos & -pos if pos else 1 << (n - i).bit_length()
        while size > n - i:
            size >>= 1
        level = leaves[i : i + size]
        while len(level) > 1:
            level = [_sha256(b"\x01" + level[j] + level[j + 1]).digest() for j in range(0, len(level), 2)]
        out.append((size.bit_length() - 1, level[0]))
        i += size
    return out


def _verify_full(
    bundle: Bundle,
    manifest: dict[str, Any],
    last: Checkpoint,
    checkpoints: list[Checkpoint],
    jobs: int,
    strict: bool = False,
) -> int:
    """Stream a full export; return the number of events or raise Fail."""
    log_id: str = manifest["log_id"]
    at_size: dict[int, list[Checkpoint]] = {}
    for cp in checkpoints[:-1]:
        if 0 < cp.tree_size < last.tree_size:
            at_size.setdefault(cp.tree_size, []).append(cp)
    bounds = sorted(at_size)
    digest = _sha256()
    problem: str | None = None
    count, chain, merkle = 0, ZERO, _Merkle()
    runner = _Results(jobs)
    with bundle.open("events.jsonl") as fh, bundle.open("chain_hashes.bin") as chains:
        line, prev = 0, ZERO

        def tasks() -> Iterator[tuple[bytes, int, str, bytes, bytes, bool]]:
            nonlocal line, prev
            for block in _blocks(fh, digest):
                for piece in _cut(block, line, bounds):
                    n = piece.count(b"\n")
                    stored = chains.read(32 * n)
                    yield piece, line, log_id, prev, stored, strict
                    line += n
                    if len(stored) >= 32:
                        prev = stored[-32:]

        try:
            for start, ok, error, subtrees, last_chain in runner.run(check_full_block, tasks()):
                for height, root in subtrees:
                    merkle.append_subtree(height, root)
                count = start + ok
                if ok:
                    chain = last_chain
                if error is not None:
                    offset, seq, message = error
                    where = f"events.jsonl line {start + offset + 1}" + (
                        f" (seq {seq})" if seq is not None else ""
                    )
                    problem = f"{where}: {message}"
                    break
                differs = [
                    cp for cp in at_size.get(count, ()) if (cp.chain, cp.root) != (chain, merkle.root())
                ]
                if differs:
                    problem = f"events.jsonl line {count} (seq {count - 1}): differs from {differs[0].label}"
                    break
        finally:
            runner.close()
        for block in iter(lambda: fh.read(BLOCK), b""):  # finish the file digest
            digest.update(block)
        extra = chains.read(1)
    if digest.hexdigest() != manifest["files"]["events.jsonl"]:
        raise Fail("events.jsonl: sha256 does not match manifest.json")
    if problem is not None:
        raise Fail(problem)
    if count != last.tree_size:
        raise Fail(f"events.jsonl holds {count} events but the checkpoint's tree size is {last.tree_size}")
    if extra:
        raise Fail("chain_hashes.bin holds more hashes than events.jsonl has events")
    if chain != last.chain:
        raise Fail("events.jsonl: final chain hash does not match the checkpoint's chain line")
    if merkle.root() != last.root:
        raise Fail("events.jsonl: Merkle root does not match the checkpoint's root hash")
    return count


def _cut(block: bytes, line: int, bounds: list[int]) -> Iterator[bytes]:
    """Cut a block of lines so that every checkpoint size in ``bounds`` falls between pieces."""
    n = block.count(b"\n")
    for bound in bounds:
        if line < bound < line + n:
            pos = -1
            for _ in range(bound - line):
                pos = block.index(b"\n", pos + 1)
            yield block[: pos + 1]
            block, n, line = block[pos + 1 :], n - (bound - line), bound
    if block:
        yield block


def _verify_events(
    bundle: Bundle, manifest: dict[str, Any], last: Checkpoint, jobs: int
) -> tuple[int, int | None, int | None, str]:
    """Stream the events of a scoped export, each checked by its inclusion proof; return (count,
    first seq, last seq, seq digest) or raise Fail."""
    log_id: str = manifest["log_id"]
    size = last.tree_size
    proofs = _load_proofs(bundle, "proofs.json")
    digest = _sha256()
    seq_digest = _sha256()
    pack = _UINT64.pack
    problem: str | None = None
    count, first, prev_seq = 0, None, -1
    runner = _Results(jobs)
    with bundle.open("events.jsonl") as fh:
        tasks = ((block, log_id) for block in _blocks(fh, digest))
        line = 0
        try:
            for leaves, seqs, error in runner.run(check_block, tasks):
                for i, seq in enumerate(seqs):
                    line += 1
                    where = f"events.jsonl line {line} (seq {seq})"
                    leaf = leaves[32 * i : 32 * i + 32]
                    if seq <= prev_seq:
                        problem = f"{where}: seq not after the previous line's seq {prev_seq}"
                        break
                    proof = proofs.get(seq)
                    if proof is None:
                        problem = f"{where}: no inclusion proof in proofs.json"
                        break
                    if not _verify_inclusion(leaf, seq, size, proof, last.root):
                        problem = f"{where}: inclusion proof does not verify against the checkpoint"
                        break
                    if first is None:
                        first = seq
                    prev_seq = seq
                    seq_digest.update(pack(seq))
                    count += 1
                if problem is None and error is not None:
                    problem = f"events.jsonl line {line + 1}: {error[1]}"
                if problem is not None:
                    break
        finally:
            runner.close()  # once: the workers stop before the rest of the file is digested
        for block in iter(lambda: fh.read(BLOCK), b""):  # finish the file digest
            digest.update(block)
    if digest.hexdigest() != manifest["files"]["events.jsonl"]:
        raise Fail("events.jsonl: sha256 does not match manifest.json")
    if problem is not None:
        raise Fail(problem)
    if count != len(proofs):
        raise Fail(f"proofs.json holds {len(proofs)} proofs for {count} events")
    return count, first, (prev_seq if count else None), seq_digest.hexdigest()


def _range_seq_digest(count: int) -> str:
    """seq_digest of the seqs 0..count-1 (a full export), 64K seqs at a time."""
    h, step = _sha256(), 1 << 16
    for start in range(0, count, step):
        seqs = array.array("Q", range(start, min(count, start + step)))
        if seqs.itemsize != 8:  # no 8-byte unsigned array type here: pack one by one
            h.update(b"".join(map(_UINT64.pack, seqs)))
            continue
        if sys.byteorder == "little":
            seqs.byteswap()
        h.update(seqs.tobytes())
    return h.hexdigest()


def _verify_consistency(size1: int, size2: int, proof: list[bytes], root1: bytes, root2: bytes) -> bool:
    """RFC 9162 section 2.1.4.2 (0 < size1 < size2)."""
    if not 0 < size1 < size2 or not proof:
        return False
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # the old tree is itself a node of the new one
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
            fr = _sha256(b"\x01" + c + fr).digest()
            sr = _sha256(b"\x01" + c + sr).digest()
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = _sha256(b"\x01" + sr + c).digest()
        fn >>= 1
        sn >>= 1
    return fr == root1 and sr == root2 and sn == 0


def _check_sizes(cp: Checkpoint, last: Checkpoint) -> bool:
    """The checks of an older checkpoint ``cp`` that need no events or proof (not newer than
    ``last``; the same as it at its size; an empty tree's root). True when ``cp`` still needs its
    tree proved a prefix of ``last``'s (0 < size < last's): by the events themselves in a full
    bundle (while streaming), by a consistency proof in a scoped one (``_check_consistency``)."""
    m = cp.tree_size
    if m > last.tree_size:
        raise Fail(f"{cp.label} (tree size {m}) is newer than this bundle's tree size {last.tree_size}")
    if m == last.tree_size:
        if (cp.root, cp.chain) != (last.root, last.chain):
            raise Fail(f"{cp.label} (tree size {m}) differs from this bundle's checkpoint of the same size")
        return False
    if m == 0:
        if cp.root != EMPTY_ROOT:
            raise Fail(f"{cp.label}: an empty tree with a non-empty root")
        return False
    return True


def _check_consistency(cp: Checkpoint, last: Checkpoint, links: dict[int, list[bytes]]) -> None:
    """A scoped bundle: the log of ``last`` extends the tree of ``cp`` (0 < size < last's), by the
    consistency proof from that size in consistency.json."""
    m = cp.tree_size
    proof = links.get(m)
    if proof is None:
        raise Fail(
            f"{cp.label} (tree size {m}): consistency.json holds no proof from that tree size; "
            f"ask for an export with previous: [{m}]"
        )
    if not _verify_consistency(m, last.tree_size, proof, cp.root, last.root):
        raise Fail(
            f"{cp.label} (tree size {m}): the consistency proof to tree size {last.tree_size} does not "
            "verify: the log was changed, not only appended to"
        )


def _events_size(bundle: Bundle) -> int:
    if bundle.zip is not None:
        return bundle.zip.getinfo("events.jsonl").file_size
    return os.path.getsize(os.path.join(bundle.path, "events.jsonl"))


# --------------------------------------------------------------------------------------------------


def verify(
    path: str,
    jobs: int = 0,
    strict: bool = False,
    previous: tuple[str, ...] = (),
    pinned: Key | None = None,
) -> str:
    """Verify the bundle at ``path`` (zip or directory); return the OK lines or raise Fail."""
    bundle = Bundle(path)
    key = _load_public_key(bundle, pinned)
    manifest = _load_manifest(bundle, key)
    _check_files(bundle, manifest, streamed={"events.jsonl"})
    checkpoints = _parse_checkpoints(bundle, key)
    last = checkpoints[-1]
    log_id = manifest["log_id"]
    for number, cp in enumerate(checkpoints, start=1):
        _check_origin(cp, log_id, f"checkpoint {number} of {len(checkpoints)}")
    sizes = [cp.tree_size for cp in checkpoints]
    if sizes != sorted(sizes):
        raise Fail("checkpoints.txt: checkpoints are not in increasing tree size order")
    if sizes != manifest["checkpoint_sizes"]:
        raise Fail(
            f"manifest checkpoint_sizes {manifest['checkpoint_sizes']} differ from checkpoints.txt's {sizes}"
        )
    if last.tree_size != manifest["tree_size"]:
        raise Fail(
            f"manifest tree_size {manifest['tree_size']} differs from the checkpoint's {last.tree_size}"
        )
    held = []
    for name in previous:
        cp = _load_previous(name, key, log_id)
        cp.label = f"--previous {name}"
        held.append(cp)
    older = [cp for cp in [*checkpoints[:-1], *held] if _check_sizes(cp, last)]
    if not manifest["full"]:
        links = _load_proofs(bundle, "consistency.json")
        for cp in older:
            _check_consistency(cp, last, links)
    if jobs == 0:
        cpus = os.cpu_count() or 1
        # Workers pay for pickling blocks and merging subtrees: on fewer than 4 CPUs one process wins.
        jobs = cpus if cpus >= PARALLEL_MIN_CPUS and _events_size(bundle) >= PARALLEL_MIN_BYTES else 1
    if manifest["full"]:
        count = _verify_full(bundle, manifest, last, [*checkpoints[:-1], *held, last], jobs, strict)
        first, final = (0, count - 1) if count else (None, None)
        seq_digest = _range_seq_digest(count)
    else:
        count, first, final, seq_digest = _verify_events(bundle, manifest, last, jobs)
    if count != manifest["event_count"]:
        raise Fail(
            f"events.jsonl holds {count} events but the signed manifest says {manifest['event_count']}"
        )
    if seq_digest != manifest["seq_digest"]:
        raise Fail("the events' seqs do not match the signed manifest's seq_digest")
    expected_range = [first, final] if count else None
    if manifest["seq_range"] != expected_range:
        raise Fail(f"manifest seq_range {manifest['seq_range']} differs from the events' {expected_range}")
    root = base64.b64encode(last.root).decode()
    seqs = f"seq {first}..{final}" if count else "no seq"
    lines = [
        f"OK: {count} events, {seqs}, tree size {last.tree_size}, root {root}",
        f"key: {key.text}"
        + (" (the key given with --key)" if pinned else " (compare it with the published key)"),
    ]
    for cp in held:
        lines.append(
            f"previous: {cp.label}, tree size {cp.tree_size} of {cp.time}: the log only grew since "
            f"(consistent with tree size {last.tree_size})"
        )
    return "\n".join(lines)


def _default_path() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    if os.path.exists(os.path.join(here, "manifest.json")):
        return here
    return os.getcwd()


USAGE = "usage: verify.py [--strict] [--jobs N] [--key KEY] [--previous NOTE]... [BUNDLE.zip | DIRECTORY]"


def _take(args: list[str], flag: str) -> list[str]:
    """Remove every ``flag VALUE`` pair from args; return the values (ValueError if one lacks its value)."""
    values = []
    while flag in args:
        at = args.index(flag)
        if at + 1 >= len(args):
            raise ValueError(flag)
        values.append(args[at + 1])
        del args[at : at + 2]
    return values


def _pinned_key(value: str) -> Key:
    """--key: the vkey itself, or a file holding it."""
    text = value
    if os.path.exists(value):
        try:
            with open(value, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise Fail(f"--key {value}: cannot read it ({exc})") from None
    return _parse_vkey(text, "--key")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    strict = "--strict" in args
    args = [a for a in args if a != "--strict"]
    try:
        jobs_given = _take(args, "--jobs")
        keys = _take(args, "--key")
        previous = tuple(_take(args, "--previous"))
        jobs = int(jobs_given[-1]) if jobs_given else 0
    except ValueError:
        print(USAGE, file=sys.stderr)
        return 2
    if len(args) > 1 or any(a.startswith("-") for a in args) or len(keys) > 1:
        print(USAGE, file=sys.stderr)
        return 2
    path = args[0] if args else _default_path()
    gc.disable()  # the pass allocates many short-lived objects and builds no cycles
    try:
        pinned = _pinned_key(keys[0]) if keys else None
        print(verify(path, jobs, strict, previous, pinned))
    except Fail as exc:
        print(f"FAIL: {exc}")
        return 1
    finally:
        gc.enable()
    return 0


if __name__ == "__main__":
    sys.exit(main())
