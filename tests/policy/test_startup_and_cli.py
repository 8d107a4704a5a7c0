"""The service refuses to start on an invalid policy folder; `audit policy check` says why."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from audit.config import default_policies_dir, get_settings
from audit.main import create_app
from audit.policy.compliance import PolicyError
from audit.policy.runtime import get_policy_engine
from tests.support import run_cli


@pytest.fixture
def broken_policies(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    shutil.copytree(default_policies_dir(), folder)
    (folder / "access" / "codes.cedar").write_text(
        '@id("codes.typo")\npermit (principal in Role::"provider", action == Action::"code.ad", resource);\n'
    )
    return folder


def test_the_service_refuses_to_start_on_an_invalid_policy(broken_policies: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AUDIT_POLICIES_DIR", str(broken_policies))
    get_settings.cache_clear()
    get_policy_engine.cache_clear()
    try:
        with pytest.raises(PolicyError, match=r"codes\.cedar"), TestClient(create_app()):
            pass
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        get_policy_engine.cache_clear()


def test_policy_check_passes_the_shipped_policies_and_names_a_broken_file(
    broken_policies: Path, fresh_db_url: str, tmp_path: Path
) -> None:
    ok = run_cli(["policy", "check"], fresh_db_url, tmp_path)
    assert ok.returncode == 0 and "decisions pass" in ok.stdout, ok.stdout + ok.stderr
    broken = run_cli(["policy", "check", str(broken_policies)], fresh_db_url, tmp_path)
    assert broken.returncode == 1 and "codes.cedar" in broken.stdout
