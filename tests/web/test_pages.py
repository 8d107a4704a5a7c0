"""The provider's and coder's pages over TestClient: each renders for its role, refuses others,
records its view, validates sort/page/filter parameters, and the full coding and signing story."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Connection

from audit.ledger.service import LEDGER
from audit.principal import CurrentUser
from tests.conftest import People
from tests.support import PASSWORD

API = "/api/v1"


def events(connection: Connection, type_: str) -> list[dict[str, Any]]:
    rows = connection.execute(select(LEDGER.c.payload).where(LEDGER.c.type == type_).order_by(LEDGER.c.seq))
    return [json.loads(bytes(r[0])) for r in rows]


def encounter(people: People, coder: CurrentUser, provider: CurrentUser, n: int, days_ago: int = 3) -> str:
    assert people.client is not None
    body = {
        "external_id": f"V-{n:04d}",
        "patient_ref": f"MRN-{n}",
        "rendering_provider_id": provider.id,
        "date_of_service": (date.today() - timedelta(days=days_ago)).isoformat(),
    }
    created = people.client.post(f"{API}/encounters", json=body, headers=people.headers(coder))
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


@pytest.fixture
def team(people: People) -> dict[str, Any]:
    provider = people.make("provider", name="Dr Ada Lovelace")
    coder = people.make("coder", name="Grace Hopper")
    people.delegate(provider, coder)
    return {"provider": provider, "coder": coder}


def test_the_story_on_the_pages(
    browser_for, people: People, team: dict[str, Any], connection: Connection
) -> None:  # type: ignore[no-untyped-def]
    provider, coder = team["provider"], team["coder"]
    eid = encounter(people, coder, provider, 1)
    c = browser_for(coder)
    page = f"/encounters/{eid}"
    # The coder enters an invalid code: the page comes back with the error, and nothing was added.
    bad = c.submit(page, f"{page}/lines", {"system": "ICD-10-CM", "code": "E11"})
    assert bad.status_code == 422 and "is not billable" in bad.text and 'role="alert"' in bad.text
    ok = c.submit(page, f"{page}/lines", {"system": "CPT", "code": "99213"}, follow_redirects=False)
    assert ok.status_code == 303
    c.submit(page, f"{page}/lines", {"system": "ICD-10-CM", "code": "E11.9"})
    shown = c.get(page).text
    assert "99213" in shown and "Grace Hopper" in shown and "under delegation from Dr Ada Lovelace" in shown
    # The provider sees it in the queue and attests, reading the meaning and the digest.
    p = browser_for(provider)
    queue = p.get("/provider/queue").text
    assert "V-0001" in queue and "MRN-1" in queue
    enc_page = p.get(page).text
    digest = re.search(r'name="digest" value="([0-9a-f]{64})"', enc_page)
    assert digest and "I attest that I am the rendering provider" in enc_page
    wrong = p.submit(page, f"{page}/attest", {"password": "wrong", "digest": digest.group(1)})
    assert wrong.status_code == 401 and "password" in wrong.text
    signed = p.submit(page, f"{page}/attest", {"password": PASSWORD, "digest": digest.group(1)},
                      follow_redirects=False)  # fmt: skip
    assert signed.status_code == 303, signed.text
    assert "V-0001" not in p.get("/provider/queue").text
    # The coder amends: a change needs a reason after attestation; then change and void.
    line_id = re.search(r'id="line-([0-9a-f-]{36})"', c.get(page).text).group(1)  # type: ignore[union-attr]
    version_page = c.get(page).text
    no_reason = c.submit(page, f"{page}/lines/{line_id}", {"version": "1", "code": "99214"})
    assert no_reason.status_code == 422 and "reason" in no_reason.text
    change = {"version": "1", "code": "99214", "reason": "documentation supports 99214"}
    changed = c.submit(page, f"{page}/lines/{line_id}", change, follow_redirects=False)
    assert changed.status_code == 303, changed.text
    assert "99213" in version_page
    c.submit(
        page, f"{page}/lines", {"system": "CPT", "code": "99401", "reason": "counselling was documented"}
    )
    # The provider sees what changed since the attestation, and re-attests.
    amended = p.get(page).text
    assert "Changed since the last attestation" in amended
    assert re.search(r"<del>99213</del> → <ins>99214</ins>", amended), amended
    assert "documentation supports 99214" in amended and "<ins>CPT 99401</ins>" in amended
    assert "V-0001" in p.get("/provider/queue").text
    digest2 = re.search(r'name="digest" value="([0-9a-f]{64})"', amended).group(1)  # type: ignore[union-attr]
    assert digest2 != digest.group(1)
    stale = p.submit(page, f"{page}/attest", {"password": PASSWORD, "digest": digest.group(1)})
    assert stale.status_code == 409 and "changed since this page was drawn" in stale.text
    again = p.submit(
        page, f"{page}/attest", {"password": PASSWORD, "digest": digest2}, follow_redirects=False
    )
    assert again.status_code == 303
    assert "Changed since the last attestation" not in p.get(page).text
    # Every page view of the encounter was recorded, with the policy that allowed it.
    reads = [e for e in events(connection, "encounter.read") if e["encounter_id"] == eid]
    assert {e["actor"]["id"] for e in reads} == {coder.id, provider.id}
    assert all(e["policy"]["rule_ids"] for e in reads)
    assert [e for e in events(connection, "encounter.list") if e["detail"]["page"] == "provider.queue"]


def test_void_on_the_page(browser_for, people: People, team: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    eid = encounter(people, team["coder"], team["provider"], 2)
    c = browser_for(team["coder"])
    page = f"/encounters/{eid}"
    c.submit(page, f"{page}/lines", {"system": "CPT", "code": "99213"})
    line_id = re.search(r'id="line-([0-9a-f-]{36})"', c.get(page).text).group(1)  # type: ignore[union-attr]
    voided = c.submit(
        page, f"{page}/lines/{line_id}/void", {"reason": "wrong encounter"}, follow_redirects=False
    )
    assert voided.status_code == 303
    assert "<del>99213</del>" in c.get(page).text


def test_worklist_filters_sorts_pages_and_shows_names(
    browser_for,
    people: People,
    team: dict[str, Any],
    connection: Connection,  # type: ignore[no-untyped-def]
) -> None:
    provider, coder = team["provider"], team["coder"]
    other = people.make("provider", name="Dr Other Person")
    for n in range(1, 13):
        encounter(people, coder, provider, 10 + n, days_ago=n)
    stranger_coder = people.make("coder")
    people.delegate(other, stranger_coder)
    hidden = encounter(people, stranger_coder, other, 99)
    c = browser_for(coder)
    first = c.get("/coder/worklist?per=10&sort=dos&dir=asc")
    assert first.status_code == 200
    assert "Dr Ada Lovelace" in first.text and "NPI 1234567893" in first.text
    assert "V-0099" not in first.text and hidden not in first.text
    assert "12 in all" in first.text and "page 1 of 2" in first.text
    assert first.text.index("V-0022") < first.text.index("V-0021")  # oldest first
    second = c.get("/coder/worklist?per=10&sort=dos&dir=asc&page=2").text
    assert "V-0011" in second and "V-0022" not in second
    by_ext = c.get("/coder/worklist?sort=external_id&dir=desc").text
    assert by_ext.index("V-0022") < by_ext.index("V-0011")
    one = c.get("/coder/worklist?external_id=V-0015").text
    assert "1 in all" in one and "V-0015" in one
    assert "0 in all" in c.get("/coder/worklist", params={"external_id": "V-001%"}).text  # not a wildcard
    assert "0 in all" in c.get("/coder/worklist", params={"external_id": "V_0015"}).text
    assert "9 in all" in c.get("/coder/worklist", params={"external_id": "V-001"}).text  # V-0011..19
    by_patient = c.get("/coder/worklist?patient_ref=MRN-16").text
    assert "V-0016" in by_patient and "V-0015" not in by_patient
    dated = c.get(f"/coder/worklist?from={date.today() - timedelta(days=2)}&to={date.today()}").text
    assert "2 in all" in dated
    assert "0 in all" in c.get("/coder/worklist?status=attested").text
    assert "12 in all" in c.get(f"/coder/worklist?provider={provider.id}").text
    for sort in ("dos", "external_id", "patient_ref", "provider", "status", "created"):
        for direction in ("asc", "desc"):
            assert c.get(f"/coder/worklist?sort={sort}&dir={direction}").status_code == 200
    listed = [e for e in events(connection, "encounter.list") if e["actor"]["id"] == coder.id]
    assert listed and listed[0]["detail"]["page"] == "coder.worklist"


HOSTILE = [
    ("sort", "id;drop table encounter"),
    ("sort", "password_hash"),
    ("dir", "sideways"),
    ("page", "0"),
    ("page", "-1"),
    ("page", "99999999999999999999"),
    ("page", "1e3"),
    ("per", "1000000"),
    ("per", "7"),
    ("from", "2026-13-01"),
    ("to", "yesterday"),
    ("status", "deleted"),
    ("provider", "' or 1=1 --"),
    ("external_id", "x" * 300),
]


@pytest.mark.parametrize(("field", "value"), HOSTILE)
def test_hostile_list_parameters_are_a_4xx_page_naming_the_field(
    browser_for,
    people: People,
    team: dict[str, Any],
    field: str,
    value: str,  # type: ignore[no-untyped-def]
) -> None:
    c = browser_for(team["coder"])
    response = c.get("/coder/worklist", params={field: value})
    assert 400 <= response.status_code < 500, (field, value, response.status_code)
    assert response.headers["content-type"].startswith("text/html")
    assert field in response.text
    if field in ("sort", "dir", "page", "per"):
        p = browser_for(team["provider"])
        queue = p.get("/provider/queue", params={field: value})
        assert 400 <= queue.status_code < 500 and field in queue.text


def test_control_characters_in_a_query_are_refused(browser_for, team: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    response = browser_for(team["coder"]).get("/coder/worklist", params={"external_id": "a\x00b"})
    assert response.status_code == 422


def test_pages_refuse_other_roles_and_record_it(
    browser_for,
    people: People,
    team: dict[str, Any],
    connection: Connection,  # type: ignore[no-untyped-def]
) -> None:
    coder, provider = team["coder"], team["provider"]
    c = browser_for(coder)
    assert c.get("/provider/queue").status_code == 403
    assert c.get("/provider/delegations").status_code == 403
    p = browser_for(provider)
    refused = p.get("/coder/worklist")
    assert refused.status_code == 403 and "worklist page is for users with the coder role" in refused.text
    denied = events(connection, "web.page")
    assert {(e["actor"]["id"], e["outcome"]) for e in denied} == {
        (coder.id, "denied"),
        (provider.id, "denied"),
    }
    admin = browser_for(people.make("admin"))
    assert admin.get("/provider/queue").status_code == 403 and admin.get("/coder/worklist").status_code == 403


def test_an_encounter_outside_the_scope_is_refused_and_recorded(
    browser_for,
    people: People,
    team: dict[str, Any],
    connection: Connection,  # type: ignore[no-untyped-def]
) -> None:
    eid = encounter(people, team["coder"], team["provider"], 5)
    outsider = people.make("coder")
    o = browser_for(outsider)
    page = o.get(f"/encounters/{eid}")
    assert page.status_code == 403 and "MRN-5" not in page.text
    write = o.submit("/", f"/encounters/{eid}/lines", {"system": "CPT", "code": "99213"})
    assert write.status_code == 403 and "MRN-5" not in write.text
    assert any(
        e["outcome"] == "denied" and e["actor"]["id"] == outsider.id
        for e in events(connection, "encounter.read")
    )
    other_provider = browser_for(people.make("provider"))
    assert other_provider.get(f"/encounters/{eid}").status_code == 403
    assert "V-0005" not in other_provider.get("/provider/queue").text
    assert browser_for(team["coder"]).get("/encounters/not-an-id").status_code == 404


def test_delegations_page_grants_by_name_and_revokes(
    browser_for,
    people: People,
    team: dict[str, Any],
    connection: Connection,  # type: ignore[no-untyped-def]
) -> None:
    new_coder = people.make("coder", name="Katherine Johnson")
    p = browser_for(team["provider"])
    page = p.get("/provider/delegations").text
    assert "Katherine Johnson" in page and "Grace Hopper" in page
    until = (date.today() + timedelta(days=30)).isoformat()
    granted = p.submit("/provider/delegations", "/provider/delegations",
                       {"coder_id": new_coder.id, "valid_until": until, "code_systems": ["CPT", "ICD-10-CM"]},
                       follow_redirects=False)  # fmt: skip
    assert granted.status_code == 303, granted.text
    listing = p.get("/provider/delegations?sort=coder&dir=asc").text
    assert listing.index("Grace Hopper") < listing.index("Katherine Johnson")
    ids = re.findall(r'action="/provider/delegations/([0-9a-f-]{36})/revoke"', listing)
    assert len(ids) == 2
    revoked = p.submit("/provider/delegations", f"/provider/delegations/{ids[0]}/revoke", {"reason": "no"},
                       follow_redirects=False)  # fmt: skip
    assert revoked.status_code == 422  # too short a reason, as the API says
    revoked = p.submit("/provider/delegations", f"/provider/delegations/{ids[0]}/revoke",
                       {"reason": "left the team"}, follow_redirects=False)  # fmt: skip
    assert revoked.status_code == 303
    assert len(events(connection, "delegation.revoke")) == 1
    old = {"coder_id": new_coder.id, "valid_until": "2001-01-01", "code_systems": ["CPT"]}
    past = p.submit("/provider/delegations", "/provider/delegations", old)
    assert past.status_code == 422 and "valid_until" in past.text


def test_inline_check_uses_the_code_set_service(browser_for, team: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    c = browser_for(team["coder"])
    dos = date.today().isoformat()
    bad = c.get("/codes/check", params={"system": "ICD-10-CM", "code": "E11", "dos": dos}).json()
    good = c.get("/codes/check", params={"system": "ICD-10-CM", "code": "E11.9", "dos": dos}).json()
    assert bad["decision"] == "refused" and good["decision"] == "accepted"
    assert c.get("/codes/check", params={"system": "NOPE", "code": "1", "dos": dos}).status_code == 422
    assert c.get("/codes/check", params={"system": "CPT", "code": "99213"}).status_code == 422


def test_encounter_lines_sort_by_every_column(browser_for, people: People, team: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    eid = encounter(people, team["coder"], team["provider"], 8)
    c = browser_for(team["coder"])
    page = f"/encounters/{eid}"
    for code in ("99214", "36415", "93000"):
        c.submit(page, f"{page}/lines", {"system": "CPT", "code": code})
    up = c.get(f"{page}?sort=code&dir=asc").text
    down = c.get(f"{page}?sort=code&dir=desc").text
    assert up.index("36415") < up.index("93000") < up.index("99214")
    assert down.index("99214") < down.index("93000") < down.index("36415")
    for column in ("entered", "system", "code", "modifiers", "units", "pointers", "version", "status",
                   "entered_by", "changed"):  # fmt: skip
        assert c.get(f"{page}?sort={column}&dir=desc").status_code == 200
    assert c.get(f"{page}?sort=password_hash").status_code == 422
    assert c.get(f"{page}?dir=up").status_code == 422
