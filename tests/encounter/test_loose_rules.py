"""Responsibility rules a new user found loose (issue 10, item 15): a provider without an NPI, a
ten-year delegation, a modifier on a diagnosis, a provider's report without `provider_id`."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Connection

from audit.ledger.events import Actor
from audit.ledger.service import LEDGER
from audit.models import utcnow
from audit.policy.runtime import get_compliance
from audit.principal import CurrentUser
from audit.uow import unit_of_work
from audit.user.schemas import UserCreate
from audit.user.service import bootstrap_user
from tests.conftest import People
from tests.support import PASSWORD

API = "/api/v1"
DOS = (date.today() - timedelta(days=3)).isoformat()


def provider_without_npi(connection: Connection, name: str, npi: str | None) -> CurrentUser:
    """A provider account created without an NPI; `npi=""` then blanks the column as an older
    version or a direct edit could have left it (the API refuses an empty NPI)."""
    from sqlalchemy import update

    from audit.models import User

    with unit_of_work(connection) as s:
        user = bootstrap_user(
            s,
            data=UserCreate(
                username=name, password=PASSWORD, display_name="Dr No Number", roles=["provider"]
            ),
            actor=Actor(id=None, role="test", username="test"),
        )
        made = CurrentUser.of(user)
    if npi is not None:
        connection.execute(update(User).where(User.id == made.id).values(npi=npi))  # type: ignore[arg-type]
    return made


def events(connection: Connection, type_: str) -> list[dict[str, Any]]:
    rows = connection.execute(select(LEDGER.c.payload).where(LEDGER.c.type == type_).order_by(LEDGER.c.seq))
    return [json.loads(bytes(r[0])) for r in rows]


def new_encounter(client: TestClient, headers: dict[str, str], provider_id: str, **extra: Any) -> Any:
    body = {
        "external_id": f"X-{provider_id[:8]}-{len(extra)}",
        "patient_ref": "MRN-7",
        "date_of_service": DOS,
        "rendering_provider_id": provider_id,
        **extra,
    }
    return client.post(f"{API}/encounters", json=body, headers=headers)


# --- a provider without an NPI ---------------------------------------------------------------------


@pytest.mark.parametrize("npi", [None, ""])
def test_a_provider_without_npi_may_not_render_or_supervise(
    client: TestClient, people: People, connection: Connection, npi: str | None
) -> None:
    nameless = provider_without_npi(connection, f"dr.nonpi{len(npi or 'x')}", npi)
    provider = people.make("provider")
    hp = people.headers(provider)
    as_rendering = new_encounter(client, people.headers(nameless), nameless.id)
    assert as_rendering.status_code == 422, as_rendering.text
    assert as_rendering.json()["field"] == "rendering_provider_id"
    assert "no NPI" in as_rendering.json()["detail"]
    as_supervisor = new_encounter(
        client, hp, provider.id, supervising_provider_ids=[provider.id, nameless.id]
    )
    assert as_supervisor.status_code == 422, as_supervisor.text
    assert as_supervisor.json()["field"] == "supervising_provider_ids[1]"
    assert new_encounter(client, hp, provider.id).status_code == 201  # with an NPI: accepted


def test_a_provider_without_npi_may_not_attest(
    client: TestClient, people: People, connection: Connection
) -> None:
    """A supervisor listed before their NPI was removed (the row is changed behind the service's back
    here, as an administrator's tool would) is refused at signing, before the password is checked."""
    from sqlalchemy import update

    from audit.models import User

    provider, supervisor = people.make("provider"), people.make("provider")
    hp = people.headers(provider)
    created = new_encounter(client, hp, provider.id, supervising_provider_ids=[supervisor.id])
    eid = created.json()["id"]
    added = client.post(f"{API}/encounters/{eid}/codes", json={"system": "CPT", "code": "99213"}, headers=hp)
    assert added.status_code == 201, added.text
    connection.execute(update(User).where(User.id == supervisor.id).values(npi=""))  # type: ignore[arg-type]
    hs = people.headers(supervisor)
    refused = client.post(f"{API}/encounters/{eid}/attestations", json={"password": "wrong"}, headers=hs)
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == "npi"
    failed = [e for e in events(connection, "encounter.attest") if e["actor"]["id"] == supervisor.id]
    assert [e["outcome"] for e in failed] == ["failed"] and failed[0]["detail"]["field"] == "npi"
    assert "failed_signings" not in failed[0]["detail"]  # the wrong password was never checked
    signed = client.post(f"{API}/encounters/{eid}/attestations", json={"password": PASSWORD}, headers=hp)
    assert signed.status_code == 201, signed.text
    assert signed.json()["npi"] == "1234567893"


# --- delegations.max_days -------------------------------------------------------------------------


def test_a_delegation_longer_than_max_days_is_refused(
    client: TestClient, people: People, connection: Connection
) -> None:
    max_days = get_compliance().delegations.max_days
    assert max_days == 365  # policies/compliance.yaml
    provider, coder = people.make("provider"), people.make("coder")
    hp = people.headers(provider)
    start = utcnow() + timedelta(days=1)

    def grant(days: float) -> Any:
        body = {
            "coder_id": coder.id,
            "code_systems": ["CPT"],
            "valid_from": start.isoformat(),
            "valid_until": (start + timedelta(days=days)).isoformat(),
        }
        return client.post(f"{API}/delegations", json=body, headers=hp)

    ten_years = grant(3652)
    assert ten_years.status_code == 422, ten_years.text
    assert ten_years.json()["field"] == "valid_until" and "max_days" in ten_years.json()["detail"]
    just_over = grant(max_days + 1 / 24)
    assert just_over.status_code == 422 and just_over.json()["field"] == "valid_until"
    assert grant(max_days).status_code == 201
    assert len(events(connection, "delegation.grant")) == 1


def test_max_days_is_read_from_compliance_yaml(tmp_path: Any) -> None:
    import shutil

    from audit.config import default_policies_dir
    from audit.policy.compliance import PolicyError, load_compliance

    copy = tmp_path / "compliance.yaml"
    shutil.copy(default_policies_dir() / "compliance.yaml", copy)
    text = copy.read_text()
    copy.write_text(text.replace("max_days: 365", "max_days: 30"))
    assert load_compliance(copy).delegations.max_days == 30
    copy.write_text(text.replace("max_days: 365", "max_days: 0"))
    with pytest.raises(PolicyError, match=r"delegations\.max_days"):
        load_compliance(copy)
    copy.write_text(text.replace("delegations:\n  max_days: 365", ""))
    assert load_compliance(copy).delegations.max_days == 365  # the default


# --- modifiers on a diagnosis --------------------------------------------------------------------


def test_a_modifier_on_a_diagnosis_is_refused(
    client: TestClient, people: People, connection: Connection
) -> None:
    provider = people.make("provider")
    hp = people.headers(provider)
    eid = new_encounter(client, hp, provider.id).json()["id"]
    codes = f"{API}/encounters/{eid}/codes"
    for system, code in (("ICD-10-CM", "E11.9"), ("ICD-10-PCS", "0DTJ4ZZ")):
        refused = client.post(codes, json={"system": system, "code": code, "modifiers": ["25"]}, headers=hp)
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == "modifiers" and "no modifiers" in refused.json()["detail"]
    failed = [e for e in events(connection, "code.add") if e["outcome"] == "failed"]
    assert [e["detail"]["field"] for e in failed] == ["modifiers", "modifiers"]
    line = client.post(codes, json={"system": "ICD-10-CM", "code": "E11.9"}, headers=hp).json()
    patched = client.patch(
        f"{codes}/{line['id']}", json={"modifiers": ["LT"]}, headers={**hp, "If-Match": '"1"'}
    )
    assert patched.status_code == 422 and patched.json()["field"] == "modifiers"
    cpt = client.post(codes, json={"system": "CPT", "code": "99213", "modifiers": ["25"]}, headers=hp)
    assert cpt.status_code == 201, cpt.text
    check = client.post(
        f"{API}/codesets/check",
        json={"system": "ICD-10-CM", "code": "E11.9", "modifiers": ["25"], "date_of_service": DOS},
        headers=hp,
    )
    assert check.status_code == 422 and check.json()["field"] == "modifiers"


# --- a provider's report without provider_id ---------------------------------------------------------


def test_a_providers_report_without_provider_id_is_their_own(
    client: TestClient, people: People, connection: Connection
) -> None:
    provider, other = people.make("provider"), people.make("provider")
    hp, ho = people.headers(provider), people.headers(other)
    for who, headers in ((provider, hp), (other, ho)):
        eid = new_encounter(client, headers, who.id).json()["id"]
        line = {"system": "CPT", "code": "99213"}
        assert client.post(f"{API}/encounters/{eid}/codes", json=line, headers=headers).status_code == 201
    report = client.get(f"{API}/reports/provider-responsibility", headers=hp)
    assert report.status_code == 200, report.text
    body = json.dumps(report.json())
    assert provider.id in body and other.id not in body
    assert report.json()["filters"]["provider_ids"] == [provider.id]
    view = events(connection, "report.view")[-1]
    assert view["outcome"] == "allowed" and view["detail"]["filters"]["provider_ids"] == [provider.id]
    someone_else = client.get(f"{API}/reports/provider-responsibility?provider_id={other.id}", headers=hp)
    assert someone_else.status_code == 403
