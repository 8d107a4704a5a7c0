"""A small organisation with known report figures, built through the real API (imported by the tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from audit.principal import CurrentUser
from tests.conftest import People
from tests.support import PASSWORD

API = "/api/v1"


def mount(client: TestClient) -> None:
    """Mount the report, sample and engagement routers unless the app already has them."""
    from audit.engagement.routes import router as engagement_router
    from audit.report.routes import router as report_router
    from audit.report.routes import samples_router

    app: FastAPI = client.app  # type: ignore[assignment]
    paths = {getattr(r, "path", "") for r in app.routes}
    for router in (report_router, samples_router, engagement_router):
        if not any(p.startswith(router.prefix) for p in paths):
            app.include_router(router)


def today() -> date:
    return datetime.now(UTC).date()


def ago(days: int) -> str:
    return (today() - timedelta(days=days)).isoformat()


@dataclass
class Org:
    client: TestClient
    people: People
    users: dict[str, CurrentUser] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    encounters: dict[str, str] = field(default_factory=dict)
    lines: dict[str, str] = field(default_factory=dict)

    def user(self, key: str, *roles: str, **kw: Any) -> CurrentUser:
        self.users[key] = self.people.make(*roles, **kw)
        self.headers[key] = self.people.headers(self.users[key])
        return self.users[key]

    def encounter(self, key: str, provider: str, days_ago: int) -> str:
        body = {"external_id": f"V-{key}", "patient_ref": f"MRN-{key}", "date_of_service": ago(days_ago),
                "rendering_provider_id": self.users[provider].id}  # fmt: skip
        r = self.client.post(f"{API}/encounters", json=body, headers=self.headers[provider])
        assert r.status_code == 201, r.text
        self.encounters[key] = r.json()["id"]
        return self.encounters[key]

    def code(self, who: str, enc: str, code: str, *, reason: str | None = None, expect: int = 201) -> Any:
        body = {"system": "CPT", "code": code, **({"reason": reason} if reason else {})}
        url = f"{API}/encounters/{self.encounters[enc]}/codes"
        r = self.client.post(url, json=body, headers=self.headers[who])
        assert r.status_code == expect, r.text
        if expect == 201:
            self.lines[f"{enc}:{code}"] = r.json()["id"]
        return r

    def change(self, who: str, enc: str, old: str, new: str, reason: str) -> None:
        line = self.lines[f"{enc}:{old}"]
        r = self.client.patch(
            f"{API}/encounters/{self.encounters[enc]}/codes/{line}",
            json={"code": new, "reason": reason},
            headers={**self.headers[who], "If-Match": '"1"'},
        )
        assert r.status_code == 200, r.text

    def attest(self, who: str, enc: str, expect: int = 201) -> Any:
        url = f"{API}/encounters/{self.encounters[enc]}/attestations"
        r = self.client.post(url, json={"password": PASSWORD}, headers=self.headers[who])
        assert r.status_code == expect, r.text
        return r

    def report(self, who: str, name: str, expect: int = 200, **params: Any) -> Any:
        r = self.client.get(f"{API}/reports/{name}", params=params, headers=self.headers[who])
        assert r.status_code == expect, r.text
        return r


def build(client: TestClient, people: People) -> Org:
    """P1 (Dr Ada Okafor) and P2 (Dr Ben Stone); coders K1 (Wei Chen: P1) and K2 (Maria Lopez: P1, P2).

    E1 P1 3d: K1 99214, P1 attests, K1 changes to 99215 -> amended (1 change after attestation)
    E2 P1 45d: K2 99213, P1 attests late
    E3 P1 10d: P1 99215, open
    E4 P2 20d: K2 99203, P2 attests, K2 adds 36415 (change after attestation), P2 re-attests
    E5 P2 70d: P2 99212, open
    Denied: K1 adds on E4 (P2), K1 attests E3 (P1). A revoked delegation P2 -> K1.
    """
    mount(client)
    org = Org(client, people)
    org.user("C", "compliance", name="Carla Compliance")
    org.user("A", "auditor", name="Otto Auditor")
    org.user("P1", "provider", name="Dr Ada Okafor", npi="1987654328")
    org.user("P2", "provider", name="Dr Ben Stone", npi="1234567893")
    org.user("K1", "coder", name="Wei Chen")
    org.user("K2", "coder", name="Maria Lopez")
    u = org.users
    people.delegate(u["P1"], u["K1"])
    people.delegate(u["P1"], u["K2"])
    people.delegate(u["P2"], u["K2"])
    revoked = people.delegate(u["P2"], u["K1"])
    r = client.post(f"{API}/delegations/{revoked}/revoke", json={"reason": "left the team"},
                    headers=org.headers["P2"])  # fmt: skip
    assert r.status_code == 200, r.text
    for key, provider, days in (("E1", "P1", 3), ("E2", "P1", 45), ("E3", "P1", 10), ("E4", "P2", 20),
                                ("E5", "P2", 70)):  # fmt: skip
        org.encounter(key, provider, days)
    org.code("K1", "E1", "99214")
    org.attest("P1", "E1")
    org.change("K1", "E1", "99214", "99215", "documentation supports level 5")
    org.code("K2", "E2", "99213")
    org.attest("P1", "E2")
    org.code("P1", "E3", "99215")
    org.code("K2", "E4", "99203")
    org.attest("P2", "E4")
    org.code("K2", "E4", "36415", reason="venipuncture was documented")
    org.attest("P2", "E4")
    org.code("P2", "E5", "99212")
    org.code("K1", "E4", "99213", expect=403)
    org.attest("K1", "E3", expect=403)
    return org
