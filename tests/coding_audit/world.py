"""A small organisation for coding-audit tests, built through the real API: providers P1 and P2,
coders K1 (for P1) and K2 (for P2), compliance C, auditor A engaged over the last 60 days.
Each provider has four encounters, each coded by their coder with one E/M line."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from audit.principal import CurrentUser
from tests.conftest import People
from tests.support import PASSWORD

API = "/api/v1"
CODES = {"P1": ["99213", "99214", "99213", "99212"], "P2": ["99213", "99213", "99214", "99215"]}


def today() -> date:
    return datetime.now(UTC).date()


def ago(days: int) -> str:
    return (today() - timedelta(days=days)).isoformat()


@dataclass
class World:
    client: TestClient
    people: People
    users: dict[str, CurrentUser] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    encounters: dict[str, list[str]] = field(default_factory=dict)  # provider key -> encounter ids
    lines: dict[str, str] = field(default_factory=dict)  # encounter id -> its E/M line id

    def user(self, key: str, *roles: str) -> CurrentUser:
        self.users[key] = self.people.make(*roles, name=f"Test {key}")
        self.headers[key] = self.people.headers(self.users[key])
        return self.users[key]

    def call(self, method: str, path: str, who: str, expect: int | None = None, **kw: Any) -> Any:
        r = self.client.request(method, f"{API}{path}", headers=self.headers[who], **kw)
        if expect is not None:
            assert r.status_code == expect, f"{method} {path} as {who}: {r.status_code} {r.text}"
        return r

    def encounter(self, provider: str, coder: str, days_ago: int, code: str) -> str:
        n = sum(len(v) for v in self.encounters.values())
        body = {"external_id": f"CA-{n}", "patient_ref": f"MRN-{n}", "date_of_service": ago(days_ago),
                "rendering_provider_id": self.users[provider].id}  # fmt: skip
        eid = self.call("POST", "/encounters", coder, 201, json=body).json()["id"]
        line = self.call("POST", f"/encounters/{eid}/codes", coder, 201, json={"system": "CPT", "code": code})
        self.encounters.setdefault(provider, []).append(eid)
        self.lines[eid] = line.json()["id"]
        return eid

    def open_audit(self, who: str = "A", expect: int = 201, **overrides: Any) -> Any:
        body: dict[str, Any] = {
            "name": "Q3 E/M probe",
            "scope": {"from": ago(30), "to": ago(0)},
            "sampling": {"method": "probe", "n": 10},
            "seed": 20260901,
            **overrides,
        }
        return self.call("POST", "/audits", who, expect, json=body)

    def finding(self, audit_id: str, who: str, eid: str, verdict: str, expect: int = 201, **kw: Any) -> Any:
        body = {"encounter_id": eid, "verdict": verdict, "rationale": "per the note", **kw}
        if verdict != "added" and "line_id" not in kw:
            body["line_id"] = self.lines[eid]
        return self.call("POST", f"/audits/{audit_id}/findings", who, expect, json=body)


def run_loop(w: World) -> tuple[str, dict[str, str]]:
    """Open, sample, record the known findings; returns the audit id and finding ids by name."""
    audit = w.open_audit().json()
    aid = audit["id"]
    sample = w.call("POST", f"/audits/{aid}/sample", "A", 200).json()
    assert sorted(e["id"] for e in sample["encounters"]) == sorted(w.encounters["P1"] + w.encounters["P2"])
    p1, p2 = w.encounters["P1"], w.encounters["P2"]
    found = {}
    found["p1e0"] = w.finding(aid, "A", p1[0], "agree").json()["id"]
    found["p1e1"] = w.finding(
        aid, "A", p1[1], "disagree", revised={"code": "99213"}, category="upcoded"
    ).json()["id"]
    found["p1e2"] = w.finding(aid, "A", p1[2], "agree").json()["id"]
    found["p1e3"] = w.finding(aid, "A", p1[3], "agree").json()["id"]
    found["added"] = w.finding(
        aid, "A", p1[3], "added", revised={"code": "36415"}, category="unbundled"
    ).json()["id"]
    for eid in p2:
        w.finding(aid, "A", eid, "agree")
    return aid, found


def settle_and_sign(w: World, aid: str, found: dict[str, str]) -> dict[str, Any]:
    """P1 disputes the upcoding (upheld) and the added line (reversed); the auditor signs."""
    for key, decision in (("p1e1", "upheld"), ("added", "reversed")):
        w.call(
            "POST",
            f"/findings/{found[key]}/responses",
            "P1",
            201,
            json={"response": "dispute", "comment": "no"},
        )
        w.call(
            "POST", f"/findings/{found[key]}/decision", "C", 200, json={"decision": decision, "comment": "ok"}
        )
    return dict(w.call("POST", f"/audits/{aid}/signature", "A", 201, json={"password": PASSWORD}).json())


def build(client: TestClient, people: People) -> World:
    w = World(client, people)
    cast = {"C": "compliance", "A": "auditor", "P1": "provider", "P2": "provider"}
    cast |= {"K1": "coder", "K2": "coder"}
    for key, role in cast.items():
        w.user(key, role)
    people.delegate(w.users["P1"], w.users["K1"])
    people.delegate(w.users["P2"], w.users["K2"])
    people.engage(w.users["A"], w.users["C"], date_from=ago(60), date_to=ago(0))
    for provider, coder in (("P1", "K1"), ("P2", "K2")):
        for i, code in enumerate(CODES[provider]):
            w.encounter(provider, coder, 5 + i, code)
    return w
