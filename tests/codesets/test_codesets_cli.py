"""`audit codesets import` and `list` with the real CMS HCPCS 2020 file, in their own process."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.migrate import upgrade
from tests.support import REPO, run_cli

HCPCS_2020 = REPO.parent / "shared/data/codesets/hcpcs/HCPC2020_ANWEB_w_disclaimer.txt"


@pytest.mark.skipif(not HCPCS_2020.exists(), reason="shared HCPCS 2020 fixture not present")
def test_import_and_list(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps the table on a narrow terminal
    upgrade(fresh_db_url)
    imported = run_cli(["codesets", "import", "hcpcs", str(HCPCS_2020)], fresh_db_url, tmp_path)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    listed = run_cli(["codesets", "list"], fresh_db_url, tmp_path)
    assert listed.returncode == 0
    assert "HCPCS 2020 Q1" in listed.stdout and "7,079" in listed.stdout
    assert "2020-01-01" in listed.stdout and "built-in" in listed.stdout
    missing = run_cli(["codesets", "import", "hcpcs", str(tmp_path / "nope.txt")], fresh_db_url, tmp_path)
    assert missing.returncode != 0
