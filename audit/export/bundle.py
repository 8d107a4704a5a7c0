"""Write export bundles that ``verify.py`` (shipped inside them) checks offline.

The format is documented at the top of :mod:`audit.export.verify`. Events are streamed into the zip
(flat memory); every file's SHA-256 is computed as it is written and listed in ``manifest.json``,
which states the scope, the tree size, the event count and a digest of the events' seqs, and is
signed with the checkpoint key (``manifest.sig``), so nothing can be cut from a bundle unnoticed.
"""

from __future__ import annotations

import hashlib
import json
import struct
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from audit.ledger.merkle import consistency_proofs, inclusion_proofs, tree_levels

FORMAT_VERSION = 2
CHECKPOINT_SEPARATOR = "---\n"
MANIFEST_NOTE_HEADER = "audit-export-manifest/v2"
VERIFY_SCRIPT = Path(__file__).with_name("verify.py")
RESERVED = frozenset(
    {
        "manifest.json",
        "manifest.sig",
        "consistency.json",
        "events.jsonl",
        "chain_hashes.bin",
        "checkpoints.txt",
        "public_key.txt",
        "proofs.json",
        "verify.py",
    }
)
_ZERO = bytes(32)


class BundleError(ValueError):
    pass


def join_checkpoints(notes: Sequence[str]) -> str:
    """Signed notes, oldest first, separated by a line holding only ``---``."""
    return CHECKPOINT_SEPARATOR.join(notes)


def manifest_note_body(log_id: str, manifest_bytes: bytes) -> str:
    """What ``manifest.sig`` signs: a fixed first line (so it can never pass for a checkpoint, whose
    second line is a tree size), the log id, and the SHA-256 of the exact bytes of manifest.json."""
    return f"{MANIFEST_NOTE_HEADER}\n{log_id}\nsha256 {hashlib.sha256(manifest_bytes).hexdigest()}\n"


def note_tree_size(note: str) -> int:
    lines = note.split("\n", 2)
    if len(lines) < 3 or not lines[1].isdigit():
        raise BundleError("a checkpoint note's second line must be its tree size")
    return int(lines[1])


def write_bundle(
    out: BinaryIO | Path,
    *,
    log_id: str,
    events: Iterable[tuple[int, bytes] | tuple[int, bytes, bytes]],
    leaf_hashes_for_proofs: Sequence[bytes] | None,
    checkpoint_note: str | Sequence[str],
    public_key_text: str,
    key_name: str,
    scope: dict[str, Any] | None,
    full: bool,
    tree_size: int,
    sign_manifest: Callable[[str], str],
    extra_files: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """Write a bundle and return its manifest.

    ``events`` yields ``(seq, payload)`` in seq order, optionally ``(seq, payload, stored chain hash)``.
    A full export holds seq 0..tree_size-1 and gets ``chain_hashes.bin`` (the stored chain hashes when
    given, else recomputed). A scoped export gets ``proofs.json``: inclusion proofs of each event
    against the tree of ``leaf_hashes_for_proofs`` (all leaf hashes 0..tree_size-1, the tree of the
    last checkpoint). ``checkpoint_note`` is one signed note or several, oldest first; the last one
    must be for ``tree_size``. A scoped export also gets ``consistency.json``: a consistency proof
    from each earlier note's tree to ``tree_size`` (a full export lets the verifier recompute them).
    ``sign_manifest`` signs a note body with the checkpoint key; it signs ``manifest.sig``.
    """
    extra = dict(extra_files or {})
    clash = RESERVED.intersection(extra)
    if clash:
        raise BundleError(f"extra file names clash with bundle files: {sorted(clash)}")
    if any("/" in name or "\\" in name or not name for name in extra):
        raise BundleError("extra file names must be plain file names")
    if not full and (leaf_hashes_for_proofs is None or len(leaf_hashes_for_proofs) != tree_size):
        raise BundleError("a scoped export needs all tree_size leaf hashes to build proofs")
    notes = [checkpoint_note] if isinstance(checkpoint_note, str) else list(checkpoint_note)
    sizes = [note_tree_size(n) for n in notes]
    if sizes[-1] != tree_size or sizes != sorted(set(sizes)):
        raise BundleError("checkpoint notes must grow in tree size and end at the bundle's tree size")
    files: dict[str, str] = {}
    seqs: list[int] = []
    first: int | None = None
    last: int | None = None
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:

        def put(name: str, data: bytes) -> None:
            files[name] = hashlib.sha256(data).hexdigest()
            zf.writestr(name, data)

        digest = hashlib.sha256()
        seq_digest = hashlib.sha256()
        pack = struct.Struct(">Q").pack
        chain_digest = hashlib.sha256()
        chain = _ZERO
        count = 0
        # zipfile allows one open writer at a time: chain hashes go to a spooled temp file first.
        with tempfile.SpooledTemporaryFile(max_size=8 << 20) as ch:
            with zf.open("events.jsonl", "w", force_zip64=True) as ev:
                for item in events:
                    seq, payload = item[0], item[1]
                    if b"\n" in payload:
                        raise BundleError(f"payload of seq {seq} contains a newline")
                    if last is not None and seq <= last:
                        raise BundleError(f"events out of order at seq {seq}")
                    if full:
                        if seq != count:
                            raise BundleError(f"a full export needs seq {count}, got {seq}")
                        if len(item) > 2:
                            chain = item[2]
                        else:
                            leaf = hashlib.sha256(b"\x00" + payload).digest()
                            chain = hashlib.sha256(b"\x02" + chain + seq.to_bytes(8, "big") + leaf).digest()
                        ch.write(chain)
                        chain_digest.update(chain)
                    else:
                        seqs.append(seq)
                    line = payload + b"\n"
                    ev.write(line)
                    digest.update(line)
                    seq_digest.update(pack(seq))
                    first = seq if first is None else first
                    last = seq
                    count += 1
            files["events.jsonl"] = digest.hexdigest()
            if full:
                if count != tree_size:
                    raise BundleError(f"a full export of tree size {tree_size} got {count} events")
                files["chain_hashes.bin"] = chain_digest.hexdigest()
                ch.seek(0)
                with zf.open("chain_hashes.bin", "w", force_zip64=True) as dst:
                    while block := ch.read(1 << 20):
                        dst.write(block)
        if not full:
            assert leaf_hashes_for_proofs is not None
            # One level-wise tree serves every inclusion and consistency proof.
            levels = tree_levels(leaf_hashes_for_proofs) if seqs or len(sizes) > 1 else [[]]
            proofs = inclusion_proofs(leaf_hashes_for_proofs, seqs, levels)
            body = {str(seq): [h.hex() for h in proofs[seq]] for seq in seqs}
            put("proofs.json", json.dumps(body, separators=(",", ":")).encode())
            links = consistency_proofs(leaf_hashes_for_proofs, sizes[:-1], levels)
            linked = {str(m): [h.hex() for h in proof] for m, proof in links.items()}
            put("consistency.json", json.dumps(linked, separators=(",", ":")).encode())
        put("checkpoints.txt", join_checkpoints(notes).encode())
        put("public_key.txt", public_key_text.strip().encode() + b"\n")
        for name in sorted(extra):
            put(name, extra[name])
        put("verify.py", VERIFY_SCRIPT.read_bytes())
        manifest: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "log_id": log_id,
            "scope": scope,
            "seq_range": [first, last] if first is not None else None,
            "tree_size": tree_size,
            "files": dict(sorted(files.items())),
            "key_name": key_name,
            "full": full,
            "event_count": count,
            "seq_digest": seq_digest.hexdigest(),
            "checkpoint_sizes": sizes,
        }
        raw = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
        zf.writestr("manifest.json", raw)
        zf.writestr("manifest.sig", sign_manifest(manifest_note_body(log_id, raw)).encode())
    return manifest
