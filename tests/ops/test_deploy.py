"""docker-compose.yml: valid Compose (``docker compose config`` when Docker is here, else the Compose
Specification's JSON schema, tests/ops/data/compose-spec.json from compose-spec/compose-spec, Apache-2.0),
and it deploys the way docs/deploy.md says."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import REPO

COMPOSE = REPO / "docker-compose.yml"
SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def _docker_compose() -> list[str] | None:
    for command in (["docker", "compose"], ["docker-compose"]):
        if (
            shutil.which(command[0])
            and subprocess.run([*command, "version"], capture_output=True, check=False).returncode == 0
        ):
            return command
    return None


def test_compose_file_is_valid(tmp_path: Path) -> None:
    command = _docker_compose()
    if command is not None:  # the real parser (it needs the secret files to exist)
        (tmp_path / "secrets").mkdir()
        for name in ("db_owner_password", "db_app_password", "audit_secret_key"):
            (tmp_path / "secrets" / f"{name}.txt").write_text("x\n")
        shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
        done = subprocess.run([*command, "config", "-q"], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return
    import jsonschema_rs

    validator = jsonschema_rs.Draft7Validator(json.loads(SCHEMA.read_text()))
    errors = [
        f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(_compose())
    ]
    assert not errors, errors


def test_the_schema_check_catches_a_broken_file() -> None:
    import jsonschema_rs

    validator = jsonschema_rs.Draft7Validator(json.loads(SCHEMA.read_text()))
    assert validator.is_valid(_compose())
    for service, key, value in (
        ("api", "depends_on", {"migrate": {"condition": "when_it_feels_like_it"}}),
        ("db", "restrat", "always"),  # a typo
        ("api", "ports", "8000"),
    ):
        broken = _compose()
        broken["services"][service][key] = value
        assert not validator.is_valid(broken), key


def test_compose_deploys_as_documented() -> None:
    services = _compose()["services"]
    api, migrate = services["api"], services["migrate"]
    api_env = api["environment"]
    assert api_env["AUDIT_DATABASE_URL"].startswith("postgresql://audit_app@")  # the least-privilege role
    assert migrate["environment"]["AUDIT_DATABASE_URL"].startswith("postgresql://audit_owner@")
    assert "grant-app-role audit_app" in " ".join(migrate["command"])
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "--no-migrate" in " ".join(api["command"]) and "--workers" in " ".join(api["command"])
    assert api_env["AUDIT_ENV"] == "production"
    mounts = {m.split(":")[1]: m.split(":")[0] for m in api["volumes"]}
    witness_dir = str(Path(api_env["AUDIT_WITNESS_FILE"]).parent)
    key_dir = str(Path(api_env["AUDIT_SIGNING_KEY_FILE"]).parent)
    assert witness_dir in mounts and key_dir in mounts
    db_volumes = {m.split(":")[0] for m in services["db"]["volumes"]}
    assert mounts[witness_dir] not in db_volumes | {mounts[key_dir]}, "the witness has its own volume"
    assert all(p.startswith("127.0.0.1:") for p in api["ports"]), "TLS terminates in front, on loopback"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "chmod 0700 /var/lib/audit/keys" in dockerfile and "USER audit" in dockerfile


@pytest.mark.parametrize("doc", ["docs/deploy.md"])
def test_deploy_doc_covers_the_issue(doc: str) -> None:
    text = (REPO / doc).read_text().lower()
    for topic in (
        "least-privilege",
        "witness",
        "0600",
        "tls",
        "read replica",
        "--workers",
        "docker compose up",
    ):
        assert topic in text, topic
