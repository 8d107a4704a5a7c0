"""Issue 9's done-when, through the real API with the real built-in code sets (nothing imported).

- DOS 2025-11-15 (FY2026): E11 and Z99.999 refused, E11.9 accepted.
- DOS 2025-06-15 (FY2025): E11.A (new in FY2026) refused, E11.9 accepted.
- DOS 2026-11-15 (FY2027, not built in): E11 refused (a header in FY2026); Z99.999 accepted as
  unverified, and it blocks attestation (409 naming the line) unless compliance.yaml says `warn`.
- DOS 2025-06-15, ICD-10-PCS: 0DTJ4ZZ accepted, K3YF2QN refused.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from audit.config import default_policies_dir, get_settings
from audit.policy.runtime import get_policy_engine
from tests.codesets.test_codes_on_encounters import encounter
from tests.conftest import People
from tests.support import PASSWORD

API = "/api/v1"


def add(client: TestClient, eid: str, headers: dict[str, str], system: str, code: str) -> Any:
    return client.post(
        f"{API}/encounters/{eid}/codes", json={"system": system, "code": code}, headers=headers
    )


def attest(client: TestClient, eid: str, headers: dict[str, str]) -> Any:
    return client.post(f"{API}/encounters/{eid}/attestations", json={"password": PASSWORD}, headers=headers)


def test_fy2026_refuses_headers_and_invented_codes(client: TestClient, people: People) -> None:
    eid, hc, hp = encounter(client, people, "2025-11-15")
    for code, why in (("E11", "header"), ("Z99.999", "does not exist")):
        refused = add(client, eid, hc, "ICD-10-CM", code)
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == "code" and why in refused.json()["detail"]
        assert refused.json()["release"] == "FY2026 (built-in)"
    accepted = add(client, eid, hc, "ICD-10-CM", "E11.9")
    assert accepted.status_code == 201 and accepted.json()["findings"] == []
    assert attest(client, eid, hp).status_code == 201


def test_fy2025_refuses_a_code_new_in_fy2026(client: TestClient, people: People) -> None:
    eid, hc, _ = encounter(client, people, "2025-06-15")
    for new_in_fy2026 in ("E11.A", "QA0.0142"):
        refused = add(client, eid, hc, "ICD-10-CM", new_in_fy2026)
        assert refused.status_code == 422 and refused.json()["release"] == "FY2025 (built-in)"
    assert add(client, eid, hc, "ICD-10-CM", "E11.9").status_code == 201
    later, hc2, _ = encounter(client, people, "2026-02-01")
    assert add(client, later, hc2, "ICD-10-CM", "QA0.0142").status_code == 201


def test_fy2027_header_refused_unknown_code_unverified_and_blocks_attestation(
    client: TestClient, people: People
) -> None:
    eid, hc, hp = encounter(client, people, "2026-11-15")
    header = add(client, eid, hc, "ICD-10-CM", "E11")
    assert header.status_code == 422 and "header" in header.json()["detail"]
    assert "FY2026" in header.json()["detail"] and "2026-11-15" in header.json()["detail"]

    known = add(client, eid, hc, "ICD-10-CM", "E11.9")
    assert known.status_code == 201
    (fallback,) = known.json()["findings"]
    assert fallback["kind"] == "codeset_fallback" and fallback["checked_against"] == "FY2026 (built-in)"

    unknown = add(client, eid, hc, "ICD-10-CM", "Z99.999")
    assert unknown.status_code == 201, unknown.text
    (finding,) = unknown.json()["findings"]
    assert finding["kind"] == "codeset_unverified" and finding["blocks_attestation"] is True
    assert finding["required_release"] == "ICD-10-CM FY2027"
    assert finding["import_command"] == "audit codesets import icd10cm icd10cm_order_2027.txt"
    assert finding["source"].startswith("https://www.cms.gov/")

    blocked = attest(client, eid, hp)
    assert blocked.status_code == 409, blocked.text
    (line,) = blocked.json()["lines"]
    assert line["line_id"] == unknown.json()["id"] and line["status"] == "unverified"
    assert line["import_command"] == finding["import_command"]
    assert unknown.json()["id"] in blocked.json()["detail"]


@pytest.fixture
def unverified_warn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A copy of the shipped policies with `codesets: unverified: warn`."""
    folder = tmp_path / "policies"
    shutil.copytree(default_policies_dir(), folder)
    compliance = folder / "compliance.yaml"
    text = compliance.read_text()
    assert "  unverified: block" in text
    compliance.write_text(text.replace("  unverified: block", "  unverified: warn"))
    monkeypatch.setenv("AUDIT_POLICIES_DIR", str(folder))
    get_settings.cache_clear()
    get_policy_engine.cache_clear()
    yield
    monkeypatch.delenv("AUDIT_POLICIES_DIR")
    get_settings.cache_clear()
    get_policy_engine.cache_clear()


@pytest.mark.usefixtures("unverified_warn")
def test_warn_mode_lets_an_unverified_line_be_attested_and_records_it(
    client: TestClient, people: People
) -> None:
    eid, hc, hp = encounter(client, people, "2026-11-15")
    unknown = add(client, eid, hc, "ICD-10-CM", "Z99.999")
    assert unknown.json()["findings"][0]["blocks_attestation"] is False
    signed = attest(client, eid, hp)
    assert signed.status_code == 201, signed.text
    history = client.get(f"{API}/encounters/{eid}/history", headers=hp).json()
    (event,) = [h for h in history if h["type"] == "encounter.attest"]
    assert [f["kind"] for f in event["detail"]["findings"]] == ["codeset_unverified"]
    assert event["detail"]["findings"][0]["line_id"] == unknown.json()["id"]


def test_icd10pcs_fy2025(client: TestClient, people: People) -> None:
    eid, hc, _ = encounter(client, people, "2025-06-15")
    accepted = add(client, eid, hc, "ICD-10-PCS", "0DTJ4ZZ")
    assert accepted.status_code == 201 and accepted.json()["findings"] == []
    for invented in ("K3YF2QN", "0DTJ4ZQ"):
        refused = add(client, eid, hc, "ICD-10-PCS", invented)
        assert refused.status_code == 422 and refused.json()["field"] == "code", invented
    # Outside the section the FY2025 list holds: judged by the FY2024 April list, and named.
    imaging = add(client, eid, hc, "ICD-10-PCS", "BW03ZZZ")
    assert imaging.status_code == 201
    assert imaging.json()["findings"][0]["checked_against"] == "FY2024 April 2024 update (built-in)"
