"""A refusal says which condition failed, in words (issue 10, item 15), and the decision is unchanged:
it still comes from `authorize()`; the explanation is asked of Cedar on the same request."""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Connection

from audit.config import default_policies_dir
from audit.ledger.service import LEDGER
from audit.policy.decision_table import case_request, load_decision_cases
from audit.policy.engine import PolicyEngine
from audit.policy.explain import Explainer
from tests.conftest import People

API = "/api/v1"
DOS = (date.today() - timedelta(days=3)).isoformat()


def last_denied(connection: Connection, actor_id: str) -> dict[str, Any]:
    row = connection.execute(
        select(LEDGER.c.payload)
        .where(LEDGER.c.actor_id == actor_id, LEDGER.c.outcome == "denied")
        .order_by(LEDGER.c.seq.desc())
    ).first()
    assert row is not None
    return dict(json.loads(bytes(row[0])))


def okafor_encounter(client: TestClient, people: People) -> tuple[Any, dict[str, str], str]:
    okafor = people.make("provider", name="Dr Ada Okafor")
    hp = people.headers(okafor)
    body = {
        "external_id": "E-1",
        "patient_ref": "MRN-1",
        "date_of_service": DOS,
        "rendering_provider_id": okafor.id,
    }
    created = client.post(f"{API}/encounters", json=body, headers=hp)
    assert created.status_code == 201, created.text
    return okafor, hp, created.json()["id"]


def test_a_coder_is_told_which_delegation_lacks_what(
    client: TestClient, people: People, connection: Connection
) -> None:
    okafor, _, eid = okafor_encounter(client, people)
    coder = people.make("coder", name="Wei Chen")
    delegation = people.delegate(okafor, coder, code_systems=["CPT", "ICD-10-CM"])
    hc = people.headers(coder)
    refused = client.post(
        f"{API}/encounters/{eid}/codes", json={"system": "ICD-10-PCS", "code": "0DTJ4ZZ"}, headers=hc
    )
    assert refused.status_code == 403, refused.text
    body = refused.json()
    expected = (
        f"no active delegation from Dr Ada Okafor covers ICD-10-PCS on {DOS} "
        f"(delegation {delegation[:8]} from Dr Ada Okafor covers CPT, ICD-10-CM, not ICD-10-PCS)"
    )
    assert body["explanation"] == expected
    assert body["detail"] == f"{coder.username} may not code.add: {expected}"
    assert body["rule_ids"] == ["default.deny"]
    event = last_denied(connection, coder.id)
    assert event["type"] == "code.add" and event["reason"] == "denied by policy"
    assert event["detail"]["explanation"] == expected
    assert event["policy"]["rule_ids"] == ["default.deny"]
    # The same coder may add a CPT line: the explanation changed nothing about the decision.
    allowed = client.post(
        f"{API}/encounters/{eid}/codes", json={"system": "CPT", "code": "99213"}, headers=hc
    )
    assert allowed.status_code == 201, allowed.text


def test_a_coder_without_any_delegation(client: TestClient, people: People, connection: Connection) -> None:
    okafor, _, eid = okafor_encounter(client, people)
    coder = people.make("coder")
    refused = client.post(
        f"{API}/encounters/{eid}/codes",
        json={"system": "CPT", "code": "99213"},
        headers=people.headers(coder),
    )
    assert refused.status_code == 403
    # The coder may not read the encounter, so the answer names neither its provider nor its date.
    words = "no active delegation from this encounter's provider of record covers CPT on its date of service"
    assert refused.json()["explanation"] == words
    assert "Okafor" not in refused.text and DOS not in refused.text
    # One who may read it (a delegation from Dr Okafor, for dates of service before this one) is told.
    window = people.make("coder")
    until = (date.fromisoformat(DOS) - timedelta(days=1)).isoformat()
    delegation = people.delegate(okafor, window, code_systems=["CPT"], dos_until=until)
    told = client.post(
        f"{API}/encounters/{eid}/codes",
        json={"system": "CPT", "code": "99213"},
        headers=people.headers(window),
    )
    assert told.status_code == 403
    assert told.json()["explanation"] == (
        f"no active delegation from this encounter's provider of record covers CPT on its date of service "
        f"(delegation {delegation[:8]} covers dates of service until {until}, "
        f"not its date of service)"
    )


def test_another_provider_may_not_sign(client: TestClient, people: People, connection: Connection) -> None:
    _, hp, eid = okafor_encounter(client, people)
    assert client.post(f"{API}/encounters/{eid}/codes", json={"system": "CPT", "code": "99213"}, headers=hp)
    other = people.make("provider")
    refused = client.post(
        f"{API}/encounters/{eid}/attestations", json={"password": "irrelevant"}, headers=people.headers(other)
    )
    assert refused.status_code == 403
    words = "you are neither this encounter's provider of record nor one of its supervising providers"
    assert refused.json()["explanation"] == words
    assert last_denied(connection, other.id)["detail"]["explanation"] == words


def test_a_forbid_is_explained_by_its_annotation(client: TestClient, people: People) -> None:
    _, _, eid = okafor_encounter(client, people)
    officer = people.make("compliance")
    refused = client.post(
        f"{API}/encounters/{eid}/codes",
        json={"system": "CPT", "code": "99213"},
        headers=people.headers(officer),
    )
    assert refused.status_code == 403
    assert refused.json()["rule_ids"] == ["segregation.compliance_no_clinical_write"]
    assert refused.json()["explanation"] == "a compliance officer may not enter, change or attest codes"


def test_a_provider_asking_for_another_providers_report(client: TestClient, people: People) -> None:
    _, hp, _ = okafor_encounter(client, people)
    other = people.make("provider")
    refused = client.get(
        f"{API}/reports/provider-responsibility", params={"provider_id": other.id}, headers=hp
    )
    assert refused.status_code == 403
    assert refused.json()["explanation"] == "a provider may read only their own encounters"


def test_every_refusal_in_the_decision_table_is_explained_in_words() -> None:
    """Each deny row of policies/tests/decisions.yaml: the engine's decision, explained. Every one is
    put into words (none falls back to the Cedar text) and a forbid is named by its own words."""
    root = default_policies_dir()
    engine = PolicyEngine.load(root)
    explainer = Explainer(engine, root)
    explained = 0
    for case in load_decision_cases(root / "tests" / "decisions.yaml"):
        principal, action, resource, context, now = case_request(case)
        decision = engine.decide(principal, action, resource, context, now=now)
        if decision.allowed:
            continue
        text = explainer.explain(principal, action, resource, [context], decision, now).text()
        assert text and "requires" not in text, (case["name"], text)
        for rule in decision.rule_ids:
            if rule != "default.deny":
                assert explainer.forbid_words[rule] in text, (case["name"], text)
        explained += 1
    assert explained > 40


def test_a_condition_without_a_phrase_is_shown_as_cedar(tmp_path: Path) -> None:
    """A rule added without words is still explained: its rule id and the failing condition."""
    root = tmp_path / "policies"
    shutil.copytree(default_policies_dir(), root)
    extra = (
        '\n@id("operations.provider_verifies_after_2100")\n'
        'permit (principal in Role::"provider", action == Action::"audit.verify", resource)\n'
        "when { context.now > 4102444800 };\n"
    )
    (root / "access" / "operations.cedar").write_text(
        (root / "access" / "operations.cedar").read_text() + extra
    )
    engine = PolicyEngine.load(root)
    explainer = Explainer(engine, root)
    from datetime import UTC, datetime

    from audit.policy.engine import Principal

    provider = Principal("p1", frozenset({"provider"}), True)
    now = datetime(2026, 3, 2, tzinfo=UTC)
    decision = engine.decide(provider, "audit.verify", None, {}, now=now)
    assert not decision.allowed and decision.rule_ids == ("default.deny",)
    text = explainer.explain(provider, "audit.verify", None, [{}], decision, now).text()
    assert text.startswith("rule operations.provider_verifies_after_2100 requires ")
    assert "context.now" in text


def test_many_delegations_are_summarised() -> None:
    from audit.policy.explain import MAX_DETAILS, Explanation, Phrase, UserRef

    tried = tuple(Phrase("delegation {d} from {p} ended", {"d": i, "p": UserRef("u1")}) for i in range(9))
    text = Explanation((Phrase("no active delegation"),), (*tried, tried[0])).text(lambda _: "Dr A")
    assert text == (
        "no active delegation (delegation 0 from Dr A ended; delegation 1 from Dr A ended; delegation 2 "
        "from Dr A ended; delegation 3 from Dr A ended; delegation 4 from Dr A ended; and 4 more)"
    )
    assert MAX_DETAILS == 5
