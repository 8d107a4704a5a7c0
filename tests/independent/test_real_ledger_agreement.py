"""The real service, over a real ledger, checked by the independent implementations alone: the signed
checkpoint it serves, the Merkle root and chain line in it, the consistency between two of its
checkpoints, and the export bundles it writes (full: root over every event; scoped: every inclusion
proof). The checks are the independent code's; the service is only asked for its output (and, in one
place, for its own proof, to compare)."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile
from datetime import date, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Connection

from audit.config import get_settings
from audit.ledger import merkle
from audit.ledger.service import LEDGER
from tests.conftest import People
from tests.export.test_export_api import story
from tests.independent import c2sp_note as note
from tests.independent import rfc6962

API = "/api/v1"


def _ledger(connection: Connection) -> list[tuple[int, bytes, bytes, bytes]]:
    rows = connection.execute(
        select(LEDGER.c.seq, LEDGER.c.payload, LEDGER.c.leaf_hash, LEDGER.c.chain_hash)
        .where(LEDGER.c.log_id == get_settings().log_id)
        .order_by(LEDGER.c.seq)
    ).all()
    return [(r[0], bytes(r[1]), bytes(r[2]), bytes(r[3])) for r in rows]


def _checkpoint(client: TestClient, headers: dict[str, str]) -> note.Checkpoint:
    text = client.get(f"{API}/audit/checkpoint", headers=headers)
    assert text.status_code == 200, text.text
    key = note.parse_verifier_key(client.get(f"{API}/audit/public-key").text)
    return note.open_checkpoint(text.text, key, origin=get_settings().origin)


def _chain(payloads: list[bytes]) -> list[bytes]:
    """DESIGN 5: chain[n] = SHA-256(0x02 || chain[n-1] || uint64_be(n) || leaf[n]), chain[-1] = 0^32."""
    out, previous = [], bytes(32)
    for n, payload in enumerate(payloads):
        previous = hashlib.sha256(
            b"\x02" + previous + struct.pack(">Q", n) + rfc6962.leaf_hash(payload)
        ).digest()
        out.append(previous)
    return out


def test_the_served_checkpoint_commits_to_the_real_ledger(
    client: TestClient, people: People, connection: Connection
) -> None:
    story(client, people, date.today() - timedelta(days=2))
    headers = people.headers(people.make("compliance"))
    checkpoint = _checkpoint(client, headers)
    rows = _ledger(connection)
    assert [seq for seq, *_ in rows] == list(range(len(rows))) and checkpoint.tree_size <= len(rows)
    payloads = [payload for _, payload, _, _ in rows[: checkpoint.tree_size]]
    tree = rfc6962.Tree(payloads)
    assert [leaf for _, _, leaf, _ in rows[: checkpoint.tree_size]] == tree.leaves
    assert tree.root() == checkpoint.root_hash
    chain = _chain(payloads)
    assert [stored for *_, stored in rows[: checkpoint.tree_size]] == chain
    assert f"chain {chain[-1].hex()}" in checkpoint.extensions
    assert checkpoint.origin == get_settings().origin and "/" in checkpoint.origin


def test_two_checkpoints_are_consistent(client: TestClient, people: People, connection: Connection) -> None:
    headers = people.headers(people.make("compliance"))
    first = _checkpoint(client, headers)
    story(client, people, date.today() - timedelta(days=1))
    second = _checkpoint(client, headers)
    assert first.tree_size < second.tree_size
    leaves = [leaf for _, _, leaf, _ in _ledger(connection)[: second.tree_size]]
    tree = rfc6962.Tree.of_leaf_hashes(leaves)
    proof = tree.proof(first.tree_size)
    assert rfc6962.verify_consistency(
        first.tree_size, second.tree_size, proof, first.root_hash, second.root_hash
    )
    assert merkle.consistency_proof(leaves, first.tree_size) == proof


def _bundle(content: bytes) -> tuple[dict[str, bytes], note.Checkpoint]:
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    key = note.parse_verifier_key(files["public_key.txt"].decode().strip())
    last = files["checkpoints.txt"].decode().split("\n---\n")[-1]
    return files, note.open_checkpoint(last, key, origin=get_settings().origin)


def test_export_bundles_verify_with_the_independent_code(client: TestClient, people: People) -> None:
    story(client, people, date(2026, 3, 10))
    story(client, people, date(2025, 6, 1))
    officer = people.headers(people.make("compliance"))

    full = client.post(f"{API}/exports", headers=officer, json={})
    assert full.status_code == 200, full.text
    files, checkpoint = _bundle(full.content)
    events = files["events.jsonl"].splitlines()
    assert len(events) == checkpoint.tree_size
    assert rfc6962.Tree(events).root() == checkpoint.root_hash

    scoped = client.post(f"{API}/exports", headers=officer, json={"from": "2026-01-01", "to": "2026-06-30"})
    assert scoped.status_code == 200, scoped.text
    files, checkpoint = _bundle(scoped.content)
    proofs = json.loads(files["proofs.json"])
    events = files["events.jsonl"].splitlines()
    assert events and len(proofs) == len(events)
    for line in events:
        seq = json.loads(line)["seq"]
        path = [bytes.fromhex(h) for h in proofs[str(seq)]]
        leaf = rfc6962.leaf_hash(line)
        assert rfc6962.verify_inclusion(leaf, seq, checkpoint.tree_size, path, checkpoint.root_hash), seq
        assert not rfc6962.verify_inclusion(leaf, seq, checkpoint.tree_size, path[:-1], checkpoint.root_hash)
