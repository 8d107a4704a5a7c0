"""The decision table harness: ``policies/tests/decisions.yaml`` rows run through the real engine.

Used by ``audit policy check`` and tests/policy; the engine (audit/policy/engine.py) knows nothing of
it. Rows are plain YAML; dates may be YAML dates or ISO strings, instants YAML timestamps or ISO
strings (naive = UTC). ``resource.type`` is one of encounter, delegation, user, engagement, system,
coding_audit, audit_finding.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from audit.policy.compliance import PolicyError
from audit.policy.engine import (
    AuditFindingRes,
    CodingAuditRes,
    DelegationRes,
    EncounterRes,
    EngagementRes,
    PolicyEngine,
    Principal,
    Resource,
    SystemRes,
    UserRes,
)


def check_case(engine: PolicyEngine, case: Mapping[str, Any]) -> str | None:
    """Run one decision-table row; return a failure message, or None when it passes."""
    name = case.get("name", "<unnamed>")
    try:
        principal, action, resource, context, now = case_request(case)
    except (KeyError, TypeError, ValueError) as exc:
        return f"{name}: malformed row: {exc}"
    d = engine.decide(principal, action, resource, context, now=now)
    want_allow = case["expect"] == "allow"
    problems = []
    if d.allowed != want_allow:
        problems.append(f"expected {case['expect']}, got {'allow' if d.allowed else 'deny'}")
    if "rule_ids" in case and sorted(case["rule_ids"]) != list(d.rule_ids):
        problems.append(f"expected rule_ids {sorted(case['rule_ids'])}, got {list(d.rule_ids)}")
    if "error" in case and bool(case["error"]) != bool(d.errors):
        problems.append(f"expected error={case['error']}, got errors {list(d.errors)}")
    if not case.get("error") and d.errors:
        problems.append(f"unexpected errors {list(d.errors)}")
    return f"{name}: " + "; ".join(problems) if problems else None


def check_decision_table(engine: PolicyEngine, path: Path | str) -> list[str]:
    """Run ``policies/tests/decisions.yaml``; return one message per failing row (empty = pass)."""
    return [m for case in load_decision_cases(path) if (m := check_case(engine, case))]


def load_decision_cases(path: Path | str) -> list[dict[str, Any]]:
    """Read the decision table: a YAML list (or a mapping with a ``cases`` list) of rows."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"{p}: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("cases")
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise PolicyError(f"{p}: expected a list of rows")
    return data


def _instant(v: Any) -> dt.datetime:
    if isinstance(v, dt.datetime):
        return v
    if isinstance(v, str):
        return dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    raise ValueError(f"not an instant: {v!r}")


def _day(v: Any) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, str):
        return dt.date.fromisoformat(v)
    raise ValueError(f"not a date: {v!r}")


def _opt_day(v: Any) -> dt.date | None:
    return None if v is None else _day(v)


def _principal(d: Mapping[str, Any]) -> Principal:
    return Principal(
        id=str(d["id"]),
        roles=frozenset(d.get("roles", ())),
        credential_active=bool(d.get("credential_active", False)),
        locked=bool(d.get("locked", False)),
        signing_locked=bool(d.get("signing_locked", False)),
    )


def _delegation(d: Mapping[str, Any]) -> DelegationRes:
    return DelegationRes(
        id=str(d["id"]),
        provider_id=str(d["provider_id"]),
        coder_id=str(d["coder_id"]),
        code_systems=frozenset(d.get("code_systems", ())),
        valid_from=_instant(d["valid_from"]),
        valid_until=_instant(d["valid_until"]),
        dos_from=_opt_day(d.get("dos_from")),
        dos_until=_opt_day(d.get("dos_until")),
        revoked=bool(d.get("revoked", False)),
    )


def _engagement(d: Mapping[str, Any]) -> EngagementRes:
    return EngagementRes(
        id=str(d["id"]),
        auditor_id=str(d["auditor_id"]),
        date_from=_day(d["date_from"]),
        date_to=_day(d["date_to"]),
        provider_ids=frozenset(d.get("provider_ids", ())),
        expires_at=_instant(d["expires_at"]),
        revoked=bool(d.get("revoked", False)),
    )


def _resource(d: Mapping[str, Any] | None) -> Resource:
    if not d:
        return None
    kind = d.get("type", "system")
    if kind == "encounter":
        return EncounterRes(
            id=str(d["id"]),
            rendering_provider_id=str(d["rendering_provider_id"]),
            supervising_provider_ids=frozenset(d.get("supervising_provider_ids", ())),
            date_of_service=_opt_day(d.get("date_of_service")),
            status=str(d.get("status", "open")),
        )
    if kind == "delegation":
        return _delegation(d)
    if kind == "user":
        return UserRes(id=str(d["id"]), roles=frozenset(d.get("roles", ())))
    if kind == "engagement":
        return _engagement(d)
    if kind == "system":
        return SystemRes(str(d.get("id", "audit")))
    if kind == "coding_audit":
        return CodingAuditRes(
            id=str(d["id"]),
            auditor_id=str(d["auditor_id"]),
            parties=frozenset(d.get("parties", ())),
            status=str(d.get("status", "open")),
        )
    if kind == "audit_finding":
        return AuditFindingRes(
            id=str(d["id"]),
            auditor_id=str(d["auditor_id"]),
            provider_id=str(d["provider_id"]),
            date_of_service=_day(d["date_of_service"]),
            coders=frozenset(d.get("coders", ())),
            attesters=frozenset(d.get("attesters", ())),
            line_author_id=d.get("line_author_id"),
        )
    raise ValueError(f"unknown resource type {kind!r}")


def case_request(
    case: Mapping[str, Any],
) -> tuple[Principal, str, Resource, dict[str, Any], dt.datetime]:
    ctx: dict[str, Any] = {}
    for key, v in (case.get("context") or {}).items():
        if key == "delegation" and isinstance(v, Mapping):
            ctx[key] = _delegation(v)
        elif key == "engagement" and isinstance(v, Mapping):
            ctx[key] = _engagement(v)
        elif key == "integration" and isinstance(v, Mapping):
            ctx[key] = _principal(v)
        elif key == "reauth_at" and v is not None:
            ctx[key] = _instant(v)
        elif key in ("scope_from", "scope_to") and v is not None:
            ctx[key] = _day(v)
        elif key == "scope_provider_ids" and isinstance(v, list):
            ctx[key] = frozenset(v)
        else:  # passed through as is: lets rows test malformed contexts
            ctx[key] = v
    return (
        _principal(case["principal"]),
        str(case["action"]),
        _resource(case.get("resource")),
        ctx,
        _instant(case["now"]),
    )
