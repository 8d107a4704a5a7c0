"""An imported line leaves the same ledger event as the same line entered through the API.

The import decides its common rows set-based (audit.imports.bulk) rather than through the services
row by row; its events must still be the API's events for the same work: same type, actor,
on-behalf-of, policy decision, before/after, findings. Only what names the particular row differs
(ids, times, the encounter's own keys) and the import's own reference in `detail.import`.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.engine import Connection

from audit.principal import CurrentUser
from tests.conftest import People
from tests.imports.test_import_api import post
from tests.imports.test_import_service import DOS, NPI, as_csv, events, row, verified

API = "/api/v1"
# (system, code, modifiers, units, diagnosis pointers): a diagnosis, procedures pointing at it, a
# modifier, and two procedures the edit checks look at together.
LINES = [
    ("ICD-10-CM", "E11.9", [], 1, []),
    ("CPT", "99213", ["25"], 1, [1]),
    ("CPT", "83036", [], 2, [1]),
    ("CPT", "36415", [], 1, []),
]


def _feed(coder: CurrentUser) -> bytes:
    return as_csv(
        [
            row(
                coder,
                n,
                external_id="IMP-1",
                patient_ref="MRN-IMP",
                system=system,
                code=code,
                modifiers="|".join(mods),
                units=str(units),
                diagnosis_pointers="|".join(str(p) for p in pointers),
            )
            for n, (system, code, mods, units, pointers) in enumerate(LINES)
        ]
    )


def _through_the_api(client: TestClient, headers: dict[str, str], provider_id: str, coder_id: str) -> None:
    body = {
        "external_id": "API-1",
        "source": "import",
        "patient_ref": "MRN-API",
        "date_of_service": DOS,
        "rendering_provider_id": provider_id,
        "on_behalf_of": coder_id,
    }
    created = client.post(f"{API}/encounters", json=body, headers=headers)
    assert created.status_code == 201, created.text
    eid = created.json()["id"]
    for system, code, mods, units, pointers in LINES:
        line = {
            "system": system,
            "code": code,
            "modifiers": mods,
            "units": units,
            "diagnosis_pointers": pointers,
            "on_behalf_of": coder_id,
        }
        added = client.post(f"{API}/encounters/{eid}/codes", json=line, headers=headers)
        assert added.status_code == 201, added.text


def _shape(evs: list[dict[str, Any]], keys: tuple[str, str]) -> list[Any]:
    """The events with every id and time that names this particular encounter and its lines
    replaced by its position, and the import's own reference dropped."""
    names: dict[str, str] = {keys[0]: "EXTERNAL", keys[1]: "PATIENT"}
    for n, event in enumerate(evs):
        names[event["subject"]["id"]] = f"SUBJECT-{n}"
    shaped = []
    for event in evs:
        event = {k: v for k, v in event.items() if k not in ("seq", "ts", "event_id")}
        event["detail"] = {k: v for k, v in event.get("detail", {}).items() if k != "import"}
        text = json.dumps(event, sort_keys=True)
        for original, name in names.items():
            text = text.replace(original, name)
        shaped.append(json.loads(text))
    return shaped


def test_an_imported_line_leaves_the_event_the_api_leaves_for_it(
    client: TestClient, connection: Connection, people: People
) -> None:
    provider = people.make("provider", npi=NPI)
    coder = people.make("coder")
    feed = people.make("integration")
    people.delegate(provider, coder)
    headers = people.headers(feed)

    imported = post(client, headers, _feed(coder))
    assert imported.status_code == 200, imported.text
    assert imported.json()["counts"]["created"] == len(LINES)
    _through_the_api(client, headers, provider.id, coder.id)

    by_encounter: dict[str, list[dict[str, Any]]] = {}
    for event in events(connection, "encounter.create") + events(connection, "code.add"):
        by_encounter.setdefault(event["encounter_id"], []).append(event)
    assert len(by_encounter) == 2
    ours, theirs = sorted(by_encounter.values(), key=lambda evs: "import" not in evs[-1]["detail"])
    assert all(e["detail"]["import"]["import_id"] == imported.json()["import_id"] for e in ours)
    assert [e["type"] for e in ours] == ["encounter.create"] + ["code.add"] * len(LINES)
    assert any(e["detail"].get("findings") for e in ours[1:])  # the findings are compared too
    assert _shape(ours, ("IMP-1", "MRN-IMP")) == _shape(theirs, ("API-1", "MRN-API"))
    verified(connection)
