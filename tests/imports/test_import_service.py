"""Bulk charge feeds through the real services on the test database: CSV and NDJSON, idempotent
re-runs, changed rows, rejections with line/field/reason, delegations and amendments after
attestation. The ledger verifies (chain, columns and state reconciliation) after each."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Connection

from audit.attestation.service import attest
from audit.imports.feed import REQUIRED, Rejection
from audit.imports.service import ImportResult, run_import
from audit.ledger.service import LEDGER
from audit.ledger.verification import verify_ledger
from audit.models import CodeLine, Encounter, ImportLine
from audit.principal import CurrentUser, host_operator
from audit.uow import unit_of_work
from tests.conftest import People
from tests.support import PASSWORD

DOS = "2026-11-02"
NPI = "1987654328"


@pytest.fixture
def org(people: People) -> dict[str, CurrentUser]:
    provider = people.make("provider", npi=NPI, name="Dr Adaeze Okafor")
    coder = people.make("coder", name="Wei Chen")
    stranger = people.make("coder", name="No Delegation")
    feed = people.make("integration", name="EHR feed")
    people.delegate(provider, coder, code_systems=["CPT", "ICD-10-CM"])
    return {"provider": provider, "coder": coder, "stranger": stranger, "feed": feed}


def row(coder: CurrentUser, n: int, **over: Any) -> dict[str, Any]:
    base = {
        "external_id": f"V-{n // 3}",
        "patient_ref": f"MRN-{n // 3}",
        "date_of_service": DOS,
        "rendering_npi": NPI,
        "entered_by": coder.username,
        "system": "CPT",
        "code": "99213",
        "modifiers": "",
        "units": "1",
        "diagnosis_pointers": "",
        "line_ref": f"L-{n}",
    }
    return {**base, **over}


def as_csv(rows: list[dict[str, Any]], columns: tuple[str, ...] = REQUIRED) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def run(
    connection: Connection, data: bytes, submitter: CurrentUser | None = None, fmt: str | None = None
) -> tuple[ImportResult, list[Rejection]]:
    rejected: list[Rejection] = []
    result = run_import(
        connection,
        submitter=submitter or host_operator(),
        stream=io.BytesIO(data),
        fmt=fmt,
        on_rejection=rejected.append,
        batch_rows=4,  # several batches even for a small feed
    )
    return result, rejected


def verified(connection: Connection) -> None:
    with unit_of_work(connection) as session:
        result = verify_ledger(session)
    assert result.ok, (result.problem, [p.as_dict() for p in result.problems[:5]])


def events(connection: Connection, type_: str) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(LEDGER.c.payload).where(LEDGER.c.type == type_).order_by(LEDGER.c.seq)
    ).all()
    return [json.loads(bytes(r[0])) for r in rows]


def lines(connection: Connection) -> list[Any]:
    return list(connection.execute(select(CodeLine.__table__)).all())  # type: ignore[attr-defined]


def test_csv_feed_as_the_operator_then_a_rerun_imports_nothing_new(
    connection: Connection, org: dict[str, CurrentUser]
) -> None:
    coder = org["coder"]
    data = as_csv([row(coder, n) for n in range(9)] + [row(coder, 9, system="ICD-10-CM", code="E11.9")])
    result, rejected = run(connection, data)
    assert rejected == []
    assert (result.counts.rows, result.counts.created, result.counts.encounters_created) == (10, 10, 4)
    assert result.sha256 == hashlib.sha256(data).hexdigest() and result.format == "csv"
    stored = lines(connection)
    assert len(stored) == 10 and {line.entered_by for line in stored} == {coder.id}
    assert all(line.delegation_id for line in stored)  # the coder's own delegation allowed each line

    adds = events(connection, "code.add")
    operator = host_operator()
    assert len(adds) == 10
    for event in adds:
        assert event["actor"] == {"id": None, "role": "operator", "username": operator.username}
        assert event["on_behalf_of"]["user_id"] == coder.id and event["on_behalf_of"]["delegation_id"]
        assert event["detail"]["import"]["import_id"] == result.import_id
    assert sorted(e["detail"]["import"]["line"] for e in adds) == list(range(2, 12))
    (summary,) = events(connection, "import.run")
    assert summary["detail"]["sha256"] == result.sha256 and summary["detail"]["counts"]["created"] == 10
    assert summary["policy"]["rule_ids"] == ["imports.feed_submitters"]
    verified(connection)

    again, rejected = run(connection, data)
    assert rejected == [] and (again.counts.created, again.counts.unchanged) == (0, 10)
    assert len(lines(connection)) == 10 and len(events(connection, "code.add")) == 10
    assert len(events(connection, "import.run")) == 2
    verified(connection)


def test_ndjson_feed_from_an_integration_account(connection: Connection, org: dict[str, CurrentUser]) -> None:
    coder, feed = org["coder"], org["feed"]
    objs = [row(coder, n) for n in range(5)]
    objs[1] |= {"modifiers": ["25"], "units": 2}  # arrays and numbers as JSON has them
    objs[2] |= {"modifiers": "25|59"}
    objs.append(row(coder, 5) | {"units": 0})  # refused, never taken as the default 1
    objs.append(row(coder, 6) | {"units": True, "code": "99214"})
    data = "\n".join(json.dumps(o) for o in objs).encode() + b"\n"
    result, rejected = run(connection, data, submitter=feed)
    assert [(r.line_no, r.field) for r in rejected] == [(6, "units"), (7, "units")]
    assert result.format == "ndjson" and result.counts.created == 5
    by_code = {tuple(line.modifiers): line for line in lines(connection)}
    assert by_code[("25",)].units == 2 and ("25", "59") in by_code
    adds = events(connection, "code.add")
    assert {e["actor"]["id"] for e in adds} == {feed.id} and {e["actor"]["role"] for e in adds} == {
        "integration"
    }
    verified(connection)


def test_a_changed_row_becomes_a_change_event(connection: Connection, org: dict[str, CurrentUser]) -> None:
    coder = org["coder"]
    rows = [row(coder, n) for n in range(4)]
    run(connection, as_csv(rows))
    rows[2] = row(coder, 2, code="99214", modifiers="25")
    result, rejected = run(connection, as_csv(rows))
    assert rejected == [] and (result.counts.changed, result.counts.unchanged) == (1, 3)
    (change,) = events(connection, "code.change")
    assert change["before"]["code"] == "99213" and change["after"]["code"] == "99214"
    assert change["after"]["modifiers"] == ["25"] and change["after"]["version"] == 2
    assert change["detail"]["import"]["line_ref"] == "L-2"
    assert len(lines(connection)) == 4
    mapping = connection.execute(select(ImportLine.__table__).where(ImportLine.line_ref == "L-2")).one()  # type: ignore[attr-defined]
    assert (
        connection.execute(select(CodeLine.code).where(CodeLine.id == mapping.line_id)).scalar_one()
        == "99214"
    )
    again, _ = run(connection, as_csv(rows))
    assert again.counts.unchanged == 4 and len(events(connection, "code.change")) == 1
    verified(connection)


def test_rejected_rows_name_line_field_and_reason_and_the_rest_import(
    connection: Connection, org: dict[str, CurrentUser]
) -> None:
    coder = org["coder"]
    good = [row(coder, n) for n in range(3)]
    bad = [
        row(coder, 10, code="ZZZZZ"),  # line 5: not a CPT code
        row(coder, 11, entered_by="nobody.here"),  # line 6
        row(coder, 12, rendering_npi="1234567893"),  # line 7: no provider has it
        row(coder, 13, date_of_service="2026-02-30"),  # line 8
        row(coder, 14, units="0"),  # line 9
        row(coder, 15, patient_ref="x" * 5000),  # line 10: a huge field
        row(coder, 16, line_ref=""),  # line 11
        row(coder, 0, patient_ref="MRN-other", line_ref="L-99"),  # line 12: disagrees with V-0
    ]
    result, rejected = run(connection, as_csv(good + bad))
    assert result.counts.created == 3 and result.counts.rejected == len(bad)
    got = {(r.line_no, r.field) for r in rejected}
    assert got == {
        (5, "code"),
        (6, "entered_by"),
        (7, "rendering_npi"),
        (8, "date_of_service"),
        (9, "units"),
        (10, "patient_ref"),
        (11, "line_ref"),
        (12, "patient_ref"),
    }, rejected
    assert all(r.reason for r in rejected)
    # the refused code left its `failed` event as the API's would, marked with the feed line
    failed = [e for e in events(connection, "code.add") if e["outcome"] == "failed"]
    assert [e["detail"]["import"]["line"] for e in failed] == [5]
    verified(connection)


def test_hostile_bytes_are_rejected_lines_never_errors(
    connection: Connection, org: dict[str, CurrentUser]
) -> None:
    coder = org["coder"]
    header_and_good = as_csv([row(coder, 0)])
    lines_ = [
        b"V-9,MRN-9,2026-11-02,1987654328,x\x00y,CPT,99213,,1,,L-a",  # line 3: NUL
        b"V-9,MRN-9,2026-11-02,1987654328,\xff\xfe,CPT,99213,,1,,L-b",  # line 4: not UTF-8
        b"V-9," + b"A" * (10 * 1024 * 1024) + b",x",  # line 5: a 10 MB line
        b"V-9,MRN-9,2026-11-02",  # line 6: too few fields
        b'V-9,"MRN-9,2026-11-02,1987654328,coder,CPT,99213,,1,,L-c',  # line 7: unterminated quote
        b"V-9,MRN-9,2026-11-02,1987654328," + coder.username.encode() + b",CPT,99213,,1,,L-\xe2\x80\xae",  # 8
    ]
    data = header_and_good + b"\n".join(lines_) + b"\n" + as_csv([row(coder, 1)]).split(b"\n", 1)[1]
    result, rejected = run(connection, data)
    assert result.counts.created == 2, rejected
    fields = {r.line_no: r.field for r in rejected}
    assert fields == {3: "entered_by", 4: "line", 5: "line", 6: "line", 7: "line", 8: "line_ref"}, rejected
    assert "NUL" in rejected[0].reason and "UTF-8" in rejected[1].reason and "longer" in rejected[2].reason
    verified(connection)


def test_lines_outside_the_named_coders_delegation_are_refused_and_recorded(
    connection: Connection, org: dict[str, CurrentUser]
) -> None:
    coder, stranger = org["coder"], org["stranger"]
    rows = [
        row(coder, 0),
        row(coder, 1, system="HCPCS", code="J1100"),  # HCPCS is outside the delegation
        row(stranger, 2),  # no delegation at all (the encounter exists: code.add is refused)
        row(stranger, 3, external_id="V-NEW", patient_ref="MRN-NEW"),  # cannot create it either
    ]
    result, rejected = run(connection, as_csv(rows))
    assert result.counts.created == 1
    assert [(r.line_no, r.field) for r in rejected] == [
        (3, "entered_by"),
        (4, "entered_by"),
        (5, "entered_by"),
    ]
    assert all("may not" in r.reason for r in rejected)
    denied = [
        e for t in ("code.add", "encounter.create") for e in events(connection, t) if e["outcome"] == "denied"
    ]
    assert len(denied) == 3
    assert {e["on_behalf_of"]["user_id"] for e in denied} == {coder.id, stranger.id}
    assert {e["actor"]["role"] for e in denied} == {"operator"}
    verified(connection)


def test_a_person_imports_only_their_own_lines(connection: Connection, org: dict[str, CurrentUser]) -> None:
    coder, stranger = org["coder"], org["stranger"]
    result, rejected = run(connection, as_csv([row(coder, 0), row(stranger, 1)]), submitter=coder)
    assert result.counts.created == 1 and [(r.line_no, r.field) for r in rejected] == [(3, "entered_by")]
    (add,) = events(connection, "code.add")
    assert add["actor"]["id"] == coder.id and add["actor"]["role"] == "coder"
    verified(connection)


def test_compliance_cannot_import(
    connection: Connection, people: People, org: dict[str, CurrentUser]
) -> None:
    from audit.errors import Forbidden

    officer = people.make("compliance")
    with pytest.raises(Forbidden):
        run(connection, as_csv([row(org["coder"], 0)]), submitter=officer)
    (denied,) = events(connection, "import.run")
    assert denied["outcome"] == "denied" and lines(connection) == []
    verified(connection)


def test_after_attestation_a_new_or_changed_line_is_an_amendment_with_a_reason(
    connection: Connection, org: dict[str, CurrentUser]
) -> None:
    coder, provider = org["coder"], org["provider"]
    columns = (*REQUIRED, "reason")
    rows = [row(coder, 0, reason=""), row(coder, 1, reason="")]
    run(connection, as_csv(rows, columns))
    encounter_id = connection.execute(select(Encounter.id).where(Encounter.external_id == "V-0")).scalar_one()
    with unit_of_work(connection) as session:
        attest(session, user=provider, encounter_id=encounter_id, password=PASSWORD)

    rows.append(row(coder, 2, code="99214", reason=""))  # a late entry without a reason
    result, rejected = run(connection, as_csv(rows, columns))
    assert [(r.line_no, r.field) for r in rejected] == [(4, "reason")] and result.counts.created == 0

    rows[2]["reason"] = "late entry: second visit documented"
    rows[1] = row(coder, 1, code="99212", reason="level corrected from the note")
    result, rejected = run(connection, as_csv(rows, columns))
    assert rejected == [] and (result.counts.created, result.counts.changed) == (1, 1)
    status = connection.execute(select(Encounter.status).where(Encounter.id == encounter_id)).scalar_one()
    assert status == "amended"
    amended = [
        e for t in ("code.add", "code.change") for e in events(connection, t) if e["detail"].get("amendment")
    ]
    assert sorted(e["reason"] for e in amended) == [
        "late entry: second visit documented",
        "level corrected from the note",
    ]
    assert len(events(connection, "attestation.supersede")) == 1
    verified(connection)


def test_the_policy_is_asked_once_per_distinct_request_not_per_row(
    connection: Connection, org: dict[str, CurrentUser], monkeypatch: pytest.MonkeyPatch
) -> None:
    """30 lines on 10 encounters of one provider, one coder, one code system: the real engine decides
    each distinct request once (code.add, encounter.create, import.run, each with and without the
    delegation), whatever the number of rows."""
    from audit.policy.engine import PolicyEngine

    asked: list[str] = []
    decide = PolicyEngine.decide

    def counting(self: PolicyEngine, principal: Any, action: str, *args: Any, **kw: Any) -> Any:
        asked.append(action)
        return decide(self, principal, action, *args, **kw)

    monkeypatch.setattr(PolicyEngine, "decide", counting)
    result, rejected = run(connection, as_csv([row(org["coder"], n) for n in range(30)]))
    assert rejected == [] and result.counts.created == 30
    assert sorted(set(asked)) == ["code.add", "encounter.create", "import.run"]
    # 5 distinct requests (6 if the run crosses a minute, which renews each memo entry once); asking per
    # row would be 40 decisions at least (30 code.add, 10 encounter.create)
    assert len(asked) <= 12, asked
