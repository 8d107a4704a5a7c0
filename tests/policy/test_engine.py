"""Policy engine: the real policies/ directory, the decision table, load-time validation, fail-closed."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest

from audit.policy.compliance import PolicyError, load_compliance
from audit.policy.decision_table import check_case, check_decision_table, load_decision_cases
from audit.policy.engine import (
    DelegationRes,
    EncounterRes,
    PolicyEngine,
    Principal,
)

POLICIES = Path(__file__).resolve().parents[2] / "policies"
TABLE = POLICIES / "tests" / "decisions.yaml"
NOW = dt.datetime(2025, 3, 2, 10, tzinfo=dt.UTC)
CASES = load_decision_cases(TABLE)


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine.load(POLICIES)


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "policies"
    shutil.copytree(POLICIES, dst)
    return dst


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 45
    assert len({c["name"] for c in CASES}) == len(CASES), "row names must be unique"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_decision_table(engine: PolicyEngine, case: dict) -> None:
    assert check_case(engine, case) is None


def test_table_covers_every_action_and_role(engine: PolicyEngine) -> None:
    from audit.policy.engine import ACTIONS

    assert {c["action"] for c in CASES} >= ACTIONS
    roles = {r for c in CASES for r in c["principal"]["roles"]}
    assert {"provider", "coder", "compliance", "auditor", "admin", "integration"} <= roles


def test_check_decision_table_reports_failures(engine: PolicyEngine, tmp_path: Path) -> None:
    assert check_decision_table(engine, TABLE) == []
    wrong = dict(CASES[0], expect="deny", rule_ids=["nope.rule"])
    bad = tmp_path / "bad.yaml"
    import yaml

    bad.write_text(yaml.safe_dump([wrong]))
    (msg,) = check_decision_table(engine, bad)
    assert "expected deny, got allow" in msg and "nope.rule" in msg


def test_version_format(engine: PolicyEngine) -> None:
    base, _, digest = engine.version.partition("+")
    assert base == (POLICIES / "VERSION").read_text().strip()
    assert len(digest) == 12 and int(digest, 16) >= 0


def test_version_changes_when_a_policy_changes(policy_copy: Path) -> None:
    before = PolicyEngine.load(policy_copy).version
    f = policy_copy / "access" / "users.cedar"
    f.write_text(f.read_text() + "\n// reviewed\n")
    after = PolicyEngine.load(policy_copy).version
    assert before != after
    assert PolicyEngine.load(POLICIES).version == before  # a copy hashes like the original


def test_version_ignores_decision_table(policy_copy: Path) -> None:
    before = PolicyEngine.load(policy_copy).version
    (policy_copy / "tests" / "decisions.yaml").write_text("[]\n")
    assert PolicyEngine.load(policy_copy).version == before


def test_id_mapping_names_each_rule_and_file(engine: PolicyEngine) -> None:
    assert engine.rule_files["codes.coder_under_delegation"] == "access/codes.cedar"
    assert all(rid.split(".")[0] == Path(f).stem for rid, f in engine.rule_files.items())
    d = engine.decide(
        Principal("drA", frozenset({"provider"})),
        "code.add",
        EncounterRes("e1", "drA"),
        {"code_system": "CPT"},
        now=NOW,
    )
    assert d.allowed and d.rule_ids == ("codes.provider_of_record",)
    assert d.policy_version == engine.version
    assert not any(r.startswith("policy") for r in d.rule_ids)


@pytest.mark.parametrize(
    ("relpath", "text", "needle"),
    [
        ("access/broken.cedar", '@id("broken.x")\npermit (principal, action, resource', "broken.cedar"),
        ("access/users.cedar", "permit (principal, action, resource);", "no @id"),
        ("access/users.cedar", '@id("codes.x")\npermit (principal, action, resource);', "users.<rule>"),
        (
            "access/extra.cedar",
            '@id("extra.bad_attr")\npermit (principal, action, resource) when { principal.nope };',
            "extra.bad_attr",
        ),
        (
            "access/extra.cedar",
            '@id("extra.bad_action")\npermit (principal, action == Action::"code.zap", resource);',
            "extra.bad_action",
        ),
        ("schema.cedarschema", "entity User in [", "schema.cedarschema"),
        ("compliance.yaml", "attestation: {deadline_days: soon}\n", "compliance.yaml"),
    ],
)
def test_invalid_policy_dir_raises(policy_copy: Path, relpath: str, text: str, needle: str) -> None:
    (policy_copy / relpath).write_text(text)
    with pytest.raises(PolicyError, match=re.escape(needle)):
        PolicyEngine.load(policy_copy)


def test_duplicate_id_raises(policy_copy: Path) -> None:
    f = policy_copy / "access" / "audit.cedar"
    f.write_text(
        f.read_text() + '\n@id("audit.compliance_full_access")\npermit (principal, action, resource);\n'
    )
    with pytest.raises(PolicyError, match="duplicate"):
        PolicyEngine.load(policy_copy)


def test_compliance_yaml_loads() -> None:
    c = load_compliance(POLICIES / "compliance.yaml")
    assert c.attestation.reauth_max_age_seconds == 300
    assert c.code_systems == ["CPT", "HCPCS", "ICD-10-CM", "ICD-10-PCS"]
    assert c.edits.ncci_mode in ("block", "warn")


@pytest.mark.parametrize(
    "text",
    ["a: [unclosed\n", "- a list\n", "attestation: {deadline_days: 1}\n"],
)
def test_bad_compliance_yaml(tmp_path: Path, text: str) -> None:
    p = tmp_path / "compliance.yaml"
    p.write_text(text)
    with pytest.raises(PolicyError, match=r"compliance\.yaml"):
        load_compliance(p)


def test_unknown_compliance_field_is_refused(tmp_path: Path) -> None:
    good = (POLICIES / "compliance.yaml").read_text()
    p = tmp_path / "compliance.yaml"
    p.write_text(good + "retention_yeras: 7\n")
    with pytest.raises(PolicyError, match="retention_yeras"):
        load_compliance(p)


def test_evaluation_error_denies_even_when_a_permit_matches(policy_copy: Path) -> None:
    """A runtime error (integer overflow) in any policy turns an otherwise-allowed request into a deny."""
    (policy_copy / "access" / "boom.cedar").write_text(
        '@id("boom.overflow")\nforbid (principal, action, resource)\n'
        "when { context.now * 9223372036854775807 > 0 };\n"
    )
    engine = PolicyEngine.load(policy_copy)
    d = engine.decide(
        Principal("drA", frozenset({"provider"})),
        "code.add",
        EncounterRes("e1", "drA"),
        {"code_system": "CPT"},
        now=NOW,
    )
    assert not d.allowed
    assert d.errors and "overflow" in " ".join(d.errors)
    assert d.rule_ids == ("default.deny",)


def test_garbage_input_never_raises(engine: PolicyEngine) -> None:
    p = Principal("cod1", frozenset({"coder"}))
    for resource, ctx in [
        (object(), {}),
        (EncounterRes("e1", "drA"), {"delegation": 42}),
        (EncounterRes("e1", "drA"), {"reauth_at": "yesterday"}),
        (EncounterRes("e1", "drA"), {"scope_provider_ids": "drA"}),
        (EncounterRes("e1", "drA"), {"via_integration": "yes"}),
    ]:
        d = engine.decide(p, "code.add", resource, ctx, now=NOW)  # type: ignore[arg-type]
        assert not d.allowed and d.errors and d.rule_ids == ("default.deny",)


def test_naive_now_is_utc(engine: PolicyEngine) -> None:
    dlg = DelegationRes(
        "d1", "drA", "cod1", frozenset({"CPT"}),
        dt.datetime(2025, 3, 2, 9, tzinfo=dt.UTC), dt.datetime(2025, 3, 2, 11, tzinfo=dt.UTC),
    )  # fmt: skip
    args = (Principal("cod1", frozenset({"coder"})), "code.add", EncounterRes("e1", "drA"))
    ctx = {"code_system": "CPT", "delegation": dlg}
    assert engine.decide(*args, ctx, now=dt.datetime(2025, 3, 2, 10)).allowed
    assert not engine.decide(*args, ctx, now=dt.datetime(2025, 3, 2, 12)).allowed


def test_decide_is_fast(engine: PolicyEngine) -> None:
    import time

    dlg = DelegationRes(
        "d1", "drA", "cod1", frozenset({"CPT"}),
        dt.datetime(2025, 1, 1, tzinfo=dt.UTC), dt.datetime(2025, 12, 31, tzinfo=dt.UTC),
    )  # fmt: skip
    p, enc = (
        Principal("cod1", frozenset({"coder"})),
        EncounterRes("e1", "drA", date_of_service=dt.date(2025, 3, 1)),
    )
    ctx = {"code_system": "CPT", "delegation": dlg}
    for _ in range(50):
        engine.decide(p, "code.add", enc, ctx, now=NOW)
    n = 500
    t0 = time.perf_counter()
    for _ in range(n):
        engine.decide(p, "code.add", enc, ctx, now=NOW)
    per_call = (time.perf_counter() - t0) / n
    assert per_call < 0.005  # generous for CI; the benchmark asserts the real < 1 ms target
