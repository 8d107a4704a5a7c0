"""Our two note and checkpoint readers behind one face, so the tests can put the same input to them and
to the independent implementation: the service's (audit/ledger/checkpoint.py) and the standalone bundle
verifier's own copy (audit/export/verify.py), which must not import the service."""

from __future__ import annotations

from pathlib import Path

from audit.export import verify as bundle_verify
from audit.ledger.checkpoint import CheckpointError, parse_and_verify_note, parse_public_key_text


def bundle_dir(folder: Path, checkpoints_text: str, vkey: str) -> bundle_verify.Bundle:
    """An unpacked bundle holding only what verify.py's note reader looks at."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "checkpoints.txt").write_text(checkpoints_text, encoding="utf-8", newline="")
    (folder / "public_key.txt").write_text(vkey + "\n", encoding="utf-8")
    return bundle_verify.Bundle(str(folder))


def service_reads(note: str, vkey: str) -> tuple[int, bytes, bytes, str] | None:
    """(tree size, root, chain, origin) if the service accepts the note, else None."""
    name, key = parse_public_key_text(vkey)
    try:
        cp = parse_and_verify_note(note, name, key)
    except CheckpointError:
        return None
    return cp.tree_size, cp.root_hash, cp.chain_hash, cp.origin


def bundle_verifier_reads(note: str, vkey: str, folder: Path) -> tuple[int, bytes, bytes, str] | None:
    """The same from verify.py, reading the note as the only checkpoint of a bundle."""
    bundle = bundle_dir(folder, note, vkey)
    try:
        key = bundle_verify._load_public_key(bundle, None)
        (cp,) = bundle_verify._parse_checkpoints(bundle, key)
    except bundle_verify.Fail:
        return None
    return cp.tree_size, cp.root, cp.chain, cp.origin
