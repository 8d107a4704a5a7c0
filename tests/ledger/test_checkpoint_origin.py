"""The checkpoint origin is a schema-less URL (C2SP tlog-checkpoint), set by AUDIT_LOG_ORIGIN; the key
name stays what it was, so checkpoints signed the old way (origin and key name ``coding-audit``) keep
verifying, in the service and in bundles. ``audit checkpoint`` prints only the note on stdout."""

from __future__ import annotations

import base64
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlmodel import Session

from audit.config import Settings, get_settings
from audit.export import verify as bundle_verify
from audit.ledger import checkpoints
from audit.ledger import service as ledger
from audit.ledger.checkpoint import format_checkpoint, parse_public_key_text, sign_note
from audit.ledger.events import Actor, EventDraft
from audit.ledger.verification import INCREMENTAL, verify_ledger
from audit.migrate import upgrade
from audit.models import Checkpoint, utcnow
from tests.conftest import People
from tests.independent import c2sp_note as note
from tests.support import run_cli

ORIGIN_VARS = (
    "AUDIT_LOG_ORIGIN",
    "AUDIT_CHECKPOINT_ORIGIN",
    "AUDIT_LOG_KEY_NAME",
    "AUDIT_ENV",
    "AUDIT_SECRET_KEY",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in ORIGIN_VARS:
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def test_default_origin_is_host_slash_log_id_and_the_key_name_is_unchanged(
    clean_env: pytest.MonkeyPatch,
) -> None:
    settings = Settings()
    host, _, log = settings.origin.rpartition("/")
    assert log == "coding-audit" and host and note.valid_name(settings.origin)
    assert settings.key_name == "coding-audit"
    clean_env.setenv("AUDIT_LOG_ORIGIN", "audit.example.org/coding-audit")
    assert (Settings().origin, Settings().key_name) == ("audit.example.org/coding-audit", "coding-audit")
    clean_env.delenv("AUDIT_LOG_ORIGIN")
    clean_env.setenv("AUDIT_CHECKPOINT_ORIGIN", "old.example.org/coding-audit")  # the earlier name
    assert Settings().origin == "old.example.org/coding-audit"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AUDIT_ENV": "production", "AUDIT_SECRET_KEY": "s3cret-" * 6}, "AUDIT_LOG_ORIGIN must be set"),
        ({"AUDIT_LOG_ORIGIN": "audit example/coding-audit"}, "no spaces"),
        ({"AUDIT_LOG_ORIGIN": "audit.example.org/coding-audit\n"}, "no spaces"),
        ({"AUDIT_LOG_ORIGIN": "audit.example.org\x01/coding-audit"}, "no spaces"),
        ({"AUDIT_LOG_ORIGIN": "audit.example.org/other-log"}, "must be the log id"),
        ({"AUDIT_LOG_KEY_NAME": "a+b"}, "AUDIT_LOG_KEY_NAME"),
    ],
)
def test_bad_origin_settings_are_refused_at_start(
    clean_env: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def _events(session: Session, n: int) -> None:
    ledger.append(session, [EventDraft(type="test.tick", actor=Actor(None, "cli", "test"))] * n)
    # The test's outer transaction stands for "committed": let this session sign over its own events.
    session.info.pop(ledger.APPENDED, None)


def _sign_the_old_way(session: Session) -> Checkpoint:
    """A checkpoint as every release before AUDIT_LOG_ORIGIN signed it: origin and key name = log id."""
    head_seq, head_chain = ledger.head(session)
    size = head_seq + 1
    body = format_checkpoint(
        "coding-audit", size, checkpoints.merkle_root_at(session, size), head_chain, utcnow()
    )
    old = Checkpoint(
        log_id="coding-audit",
        tree_size=size,
        root_hash=checkpoints.merkle_root_at(session, size),
        chain_hash=head_chain,
        note=sign_note(body, "coding-audit", checkpoints.signing_key()),
    )
    session.add(old)
    session.flush()
    for witness in checkpoints.witnesses():  # as the old release's database adopts a witness
        witness.append(old.note, size, create=True)
    return old


def test_a_checkpoint_signed_the_old_way_still_verifies(
    session: Session, clean_env: pytest.MonkeyPatch
) -> None:
    _events(session, 3)
    old = _sign_the_old_way(session)
    assert old.note.startswith("coding-audit\n") and "\n\u2014 coding-audit " in old.note
    assert checkpoints.check_against_latest(session).ok
    assert verify_ledger(session, checks=INCREMENTAL).ok
    _events(session, 2)
    new = checkpoints.create(session)
    assert new is not None and new.note.startswith(get_settings().origin + "\n")
    assert "\n\u2014 coding-audit " in new.note  # the same key name: pinned verifier keys still work
    assert checkpoints.check_against_latest(session).ok


def test_old_checkpoints_verify_after_the_key_name_follows_the_origin(
    session: Session, clean_env: pytest.MonkeyPatch
) -> None:
    """An operator who sets AUDIT_LOG_KEY_NAME to the origin (C2SP's SHOULD) keeps the old notes."""
    _events(session, 2)
    _sign_the_old_way(session)
    clean_env.setenv("AUDIT_LOG_ORIGIN", "audit.example.org/coding-audit")
    clean_env.setenv("AUDIT_LOG_KEY_NAME", "audit.example.org/coding-audit")
    get_settings.cache_clear()
    assert checkpoints.check_against_latest(session).ok
    assert verify_ledger(session, checks=INCREMENTAL).ok
    _events(session, 1)
    new = checkpoints.create(session)
    assert new is not None and "\n\u2014 audit.example.org/coding-audit " in new.note
    assert checkpoints.check_against_latest(session).ok
    name, key = parse_public_key_text(checkpoints.public_key())
    assert name == "audit.example.org/coding-audit"
    verified = note.open_checkpoint(new.note, note.Key(name, key.public_bytes_raw()))
    assert verified.origin == "audit.example.org/coding-audit"


def test_a_bundle_on_an_old_checkpoint_verifies(
    client: TestClient, people: People, session: Session, tmp_path: Path
) -> None:
    officer = people.headers(people.make("compliance"))
    _sign_the_old_way(session)  # covers the head: the export reuses it rather than signing anew
    response = client.post("/api/v1/exports", headers=officer, json={})
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        assert zf.read("checkpoints.txt").decode().startswith("coding-audit\n")
    (tmp_path / "bundle.zip").write_bytes(response.content)
    assert bundle_verify.verify(str(tmp_path / "bundle.zip"), jobs=1).startswith("OK")


def test_a_bundle_on_an_old_checkpoint_verifies_after_the_key_name_changed(
    client: TestClient, people: People, session: Session, tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    officer = people.headers(people.make("compliance"))
    _sign_the_old_way(session)
    clean_env.setenv("AUDIT_LOG_KEY_NAME", "audit.example.org/coding-audit")
    get_settings.cache_clear()
    response = client.post("/api/v1/exports", headers=officer, json={})
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        assert zf.read("public_key.txt").decode().startswith("coding-audit+")  # the name that signed it
    (tmp_path / "bundle.zip").write_bytes(response.content)
    assert bundle_verify.verify(str(tmp_path / "bundle.zip"), jobs=1).startswith("OK")


def test_cli_checkpoint_prints_only_the_note(fresh_db_url: str, tmp_path: Path) -> None:
    upgrade(fresh_db_url)
    empty = run_cli(["checkpoint"], fresh_db_url, tmp_path)
    assert empty.returncode == 1 and empty.stdout == "" and "empty" in empty.stderr
    added = run_cli(
        ["user", "add", "first.admin", "--role", "admin", "--password-stdin"],
        fresh_db_url,
        tmp_path,
        stdin="a very long admin password\n",
    )
    assert added.returncode == 0, added.stdout + added.stderr
    made = run_cli(["checkpoint"], fresh_db_url, tmp_path)
    assert made.returncode == 0 and made.stderr == "", made.stderr
    again = run_cli(["checkpoint"], fresh_db_url, tmp_path)
    assert again.returncode == 0 and again.stdout == made.stdout and "unchanged" in again.stderr
    pem = serialization.load_pem_private_key((tmp_path / "cli.key").read_bytes(), password=None)
    raw = pem.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    opened = note.open_checkpoint(again.stdout, note.Key("coding-audit", raw), origin=Settings().origin)
    assert opened.tree_size >= 1 and len(base64.b64encode(opened.root_hash)) == 44
