"""Access decisions: Cedar policies (through cedarpy) over plain request dataclasses.

Pure: no database, no clock. The caller passes ``now``; every instant becomes Long epoch seconds
and every calendar date a Long ``yyyymmdd`` in the Cedar request (see ``policies/schema.cedarschema``).

Fail closed: an unknown action, a malformed context, an entity the schema rejects or any Cedar
evaluation error yields ``allowed=False`` with the error text in ``Decision.errors``; nothing raises.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cedarpy
import yaml

from audit.policy.compliance import CompliancePolicy, PolicyError, load_compliance

__all__ = [
    "ACTIONS",
    "DEFAULT_DENY",
    "Decision",
    "DelegationRes",
    "EncounterRes",
    "EngagementRes",
    "PolicyEngine",
    "PolicyError",
    "Principal",
    "SystemRes",
    "UserRes",
    "load_decision_cases",
]

DEFAULT_DENY = "default.deny"

ACTIONS: frozenset[str] = frozenset(
    {
        "encounter.create", "encounter.read", "encounter.flag", "encounter.annotate",
        "code.add", "code.change", "code.void", "encounter.attest",
        "delegation.grant", "delegation.revoke", "delegation.read",
        "user.create", "user.read", "user.change_roles",
        "audit.read_events", "audit.verify", "report.view", "report.export",
        "engagement.open", "engagement.revoke", "sample.draw",
    }
)  # fmt: skip

CONTEXT_KEYS: frozenset[str] = frozenset(
    {
        "code_system", "delegation", "reauth_at", "via_integration", "integration",
        "engagement", "scope_from", "scope_to", "scope_provider_ids",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Principal:
    id: str
    roles: frozenset[str]
    credential_active: bool = False
    locked: bool = False


@dataclass(frozen=True)
class EncounterRes:
    id: str
    rendering_provider_id: str
    supervising_provider_ids: frozenset[str] = frozenset()
    date_of_service: dt.date | None = None
    status: str = "open"


@dataclass(frozen=True)
class DelegationRes:
    id: str
    provider_id: str
    coder_id: str
    code_systems: frozenset[str]
    valid_from: dt.datetime
    valid_until: dt.datetime
    dos_from: dt.date | None = None
    dos_until: dt.date | None = None
    revoked: bool = False


@dataclass(frozen=True)
class UserRes:
    """The target of a user-administration action."""

    id: str
    roles: frozenset[str]


@dataclass(frozen=True)
class EngagementRes:
    id: str
    auditor_id: str
    date_from: dt.date
    date_to: dt.date
    provider_ids: frozenset[str]
    expires_at: dt.datetime
    revoked: bool = False


@dataclass(frozen=True)
class SystemRes:
    """The audit log as a whole: resource of ledger reads, verify, reports, exports, sampling.

    ``decide`` accepts ``None`` for it.
    """

    id: str = "audit"


Resource = EncounterRes | DelegationRes | UserRes | EngagementRes | SystemRes | None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule_ids: tuple[str, ...]
    errors: tuple[str, ...]
    policy_version: str


# --- encoding ---------------------------------------------------------------------------------


def epoch_seconds(t: dt.datetime) -> int:
    """Epoch seconds; a naive datetime is taken as UTC."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp())


def yyyymmdd(d: dt.date) -> int:
    if isinstance(d, dt.datetime):
        d = d.date()
    return d.year * 10000 + d.month * 100 + d.day


def _uid(type_: str, id_: str) -> dict[str, str]:
    return {"type": type_, "id": id_}


def _ref(type_: str, id_: str) -> dict[str, dict[str, str]]:
    return {"__entity": {"type": type_, "id": id_}}


def _users(ids: Iterable[str]) -> list[dict[str, dict[str, str]]]:
    return [_ref("User", i) for i in sorted(ids)]


def _user_entity(p: Principal | UserRes) -> dict[str, Any]:
    active = p.credential_active if isinstance(p, Principal) else False
    locked = p.locked if isinstance(p, Principal) else False
    return {
        "uid": _uid("User", p.id),
        "attrs": {"credential_active": active, "locked": locked},
        "parents": [_uid("Role", r) for r in sorted(p.roles)],
    }


def _entity(obj: object) -> dict[str, Any]:
    """The Cedar entity JSON for a request object (resource, delegation, engagement, user)."""
    if isinstance(obj, Principal | UserRes):
        return _user_entity(obj)
    attrs: dict[str, Any]
    if isinstance(obj, EncounterRes):
        attrs = {
            "rendering_provider": _ref("User", obj.rendering_provider_id),
            "supervising_providers": _users(obj.supervising_provider_ids),
            "status": obj.status,
        }
        if obj.date_of_service is not None:
            attrs["date_of_service"] = yyyymmdd(obj.date_of_service)
        return {"uid": _uid("Encounter", obj.id), "attrs": attrs, "parents": []}
    if isinstance(obj, DelegationRes):
        attrs = {
            "provider": _ref("User", obj.provider_id),
            "coder": _ref("User", obj.coder_id),
            "code_systems": sorted(obj.code_systems),
            "valid_from": epoch_seconds(obj.valid_from),
            "valid_until": epoch_seconds(obj.valid_until),
            "revoked": bool(obj.revoked),
        }
        if obj.dos_from is not None:
            attrs["dos_from"] = yyyymmdd(obj.dos_from)
        if obj.dos_until is not None:
            attrs["dos_until"] = yyyymmdd(obj.dos_until)
        return {"uid": _uid("Delegation", obj.id), "attrs": attrs, "parents": []}
    if isinstance(obj, EngagementRes):
        attrs = {
            "auditor": _ref("User", obj.auditor_id),
            "date_from": yyyymmdd(obj.date_from),
            "date_to": yyyymmdd(obj.date_to),
            "provider_ids": _users(obj.provider_ids),
            "expires_at": epoch_seconds(obj.expires_at),
            "revoked": bool(obj.revoked),
        }
        return {"uid": _uid("Engagement", obj.id), "attrs": attrs, "parents": []}
    if isinstance(obj, SystemRes):
        return {"uid": _uid("System", obj.id), "attrs": {}, "parents": []}
    raise TypeError(f"unsupported resource type {type(obj).__name__}")


def _expect(value: object, type_: type | tuple[type, ...], key: str) -> None:
    if not isinstance(value, type_):
        raise TypeError(f"context[{key!r}] has type {type(value).__name__}")


# --- loading ----------------------------------------------------------------------------------


def _policy_version(policies_dir: Path) -> str:
    """``<VERSION>+<sha256[:12]>`` over every file under the directory except ``tests/``.

    Files are taken in order of their POSIX relative path; for each, the hash absorbs the path,
    a NUL, the 8-byte big-endian length and the bytes, so renames and moves change the version.
    """
    try:
        base = (policies_dir / "VERSION").read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise PolicyError(f"{policies_dir / 'VERSION'}: cannot read: {exc}") from exc
    if not base:
        raise PolicyError(f"{policies_dir / 'VERSION'}: empty")
    h = hashlib.sha256()
    files = sorted(
        (p.relative_to(policies_dir).as_posix(), p)
        for p in policies_dir.rglob("*")
        if p.is_file() and not any(part.startswith(".") or part == "__pycache__" for part in p.parts)
    )
    for rel, p in files:
        if rel.startswith("tests/"):
            continue
        data = p.read_bytes()
        h.update(rel.encode() + b"\0" + len(data).to_bytes(8, "big") + data)
    return f"{base}+{h.hexdigest()[:12]}"


def _ids_in_file(path: Path, text: str) -> list[str]:
    """Parse one policy file alone; return its ``@id`` values in order, checking each is present,
    well formed and starts with the file's area (``codes.cedar`` -> ``codes.``)."""
    try:
        est = json.loads(cedarpy.policies_to_json_str(text))
    except ValueError as exc:
        raise PolicyError(f"{path}: parse error: {exc}") from exc
    static = est.get("staticPolicies", {})
    if est.get("templates"):
        raise PolicyError(f"{path}: templates are not supported")
    ids: list[str] = []
    for key in sorted(static, key=lambda k: int(k.removeprefix("policy") or 0)):
        pid = (static[key].get("annotations") or {}).get("id")
        if not pid:
            raise PolicyError(f"{path}: policy #{len(ids) + 1} has no @id annotation")
        if not pid.startswith(f"{path.stem}.") or pid.count(".") != 1:
            raise PolicyError(f"{path}: @id({pid!r}) must look like '{path.stem}.<rule>'")
        ids.append(pid)
    if not ids:
        raise PolicyError(f"{path}: no policies")
    return ids


class PolicyEngine:
    """Parsed, validated policies plus compliance parameters. Load once at start-up; thread-safe."""

    def __init__(
        self,
        *,
        policy_set: cedarpy.PolicySet,
        schema: cedarpy.Schema,
        version: str,
        compliance: CompliancePolicy,
        rule_files: Mapping[str, str],
        positional_ids: Mapping[str, str],
    ) -> None:
        self._policies = policy_set
        self._schema = schema
        self.version = version
        self.compliance = compliance
        #: ``@id`` -> relative policy file, for reports and error messages.
        self.rule_files = dict(rule_files)
        self._positional = dict(positional_ids)
        self._base_context: dict[str, Any] = {
            "reauth_max_age": compliance.attestation.reauth_max_age_seconds,
            "accepted_code_systems": list(compliance.code_systems),
        }

    @classmethod
    def load(cls, policies_dir: Path | str) -> PolicyEngine:
        """Parse and validate ``schema.cedarschema`` and ``access/*.cedar``; load ``compliance.yaml``.

        Raises :class:`PolicyError` naming the file and problem on any defect, including a missing
        or duplicate ``@id`` and any schema validation error.
        """
        root = Path(policies_dir)
        schema_path = root / "schema.cedarschema"
        try:
            schema_text = schema_path.read_text(encoding="utf-8")
            schema = cedarpy.Schema.from_str(schema_text)
        except (OSError, ValueError) as exc:
            raise PolicyError(f"{schema_path}: {exc}") from exc
        files = sorted((root / "access").glob("*.cedar"))
        if not files:
            raise PolicyError(f"{root / 'access'}: no .cedar files")
        texts: list[str] = []
        rule_files: dict[str, str] = {}
        ordered_ids: list[str] = []
        for f in files:
            text = f.read_text(encoding="utf-8")
            rel = f.relative_to(root).as_posix()
            for pid in _ids_in_file(f, text):
                if pid in rule_files:
                    raise PolicyError(f"{f}: duplicate @id({pid!r}), also in {rule_files[pid]}")
                rule_files[pid] = rel
                ordered_ids.append(pid)
            texts.append(text)
        combined = "\n".join(texts)
        result = cedarpy.validate_policies(combined, schema)
        if not result.validation_passed:
            names = result.id_annotations_by_policy_id
            msgs = []
            for err in result.errors:
                pid = names.get(err.policy_id, err.policy_id)
                msgs.append(f"{rule_files.get(pid, '?')} [{pid}]: {err.error}")
            raise PolicyError("policy validation failed: " + "; ".join(msgs))
        try:
            policy_set = cedarpy.PolicySet.from_str(combined)
        except ValueError as exc:  # pragma: no cover - each file parsed alone above
            raise PolicyError(f"{root / 'access'}: {exc}") from exc
        # Cedar names policies policy0.. in text order; keep our own map as a fallback to
        # the diagnostics' id_annotations_by_reason.
        positional = {f"policy{i}": pid for i, pid in enumerate(ordered_ids)}
        return cls(
            policy_set=policy_set,
            schema=schema,
            version=_policy_version(root),
            compliance=load_compliance(root / "compliance.yaml"),
            rule_files=rule_files,
            positional_ids=positional,
        )

    # --- deciding -----------------------------------------------------------------------------

    def _deny(self, *errors: str) -> Decision:
        return Decision(False, (DEFAULT_DENY,), tuple(errors), self.version)

    def _build(
        self,
        principal: Principal,
        action: str,
        resource: Resource,
        context: Mapping[str, Any],
        now: dt.datetime,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        res = SystemRes() if resource is None else resource
        entities: dict[tuple[str, str], dict[str, Any]] = {}

        def add(obj: object) -> None:
            ent = _entity(obj)
            key = (ent["uid"]["type"], ent["uid"]["id"])
            entities.setdefault(key, ent)  # the principal (added first) wins over a same-id target

        add(principal)
        add(res)
        ctx: dict[str, Any] = {"now": epoch_seconds(now), "via_integration": False, **self._base_context}
        for key, value in context.items():
            if key not in CONTEXT_KEYS:
                raise KeyError(f"unknown context key {key!r}")
            if value is None:
                continue
            if key == "code_system":
                _expect(value, str, key)
                ctx[key] = value
            elif key == "via_integration":
                _expect(value, bool, key)
                ctx[key] = value
            elif key == "reauth_at":
                _expect(value, dt.datetime, key)
                ctx[key] = epoch_seconds(value)
            elif key in ("scope_from", "scope_to"):
                _expect(value, dt.date, key)
                ctx[key] = yyyymmdd(value)
            elif key == "scope_provider_ids":
                _expect(value, (frozenset, set, list, tuple), key)
                ctx[key] = _users(value)
            else:  # delegation, integration, engagement: entities referenced from the context
                wanted = {"delegation": DelegationRes, "integration": Principal, "engagement": EngagementRes}
                _expect(value, wanted[key], key)
                ent = _entity(value)
                ctx[key] = {"__entity": ent["uid"]}
                add(value)
        request = {
            "principal": _uid("User", principal.id),
            "action": _uid("Action", action),
            "resource": _entity(res)["uid"],
            "context": ctx,
        }
        return request, list(entities.values())

    def decide(
        self,
        principal: Principal,
        action: str,
        resource: Resource,
        context: Mapping[str, Any] | None = None,
        *,
        now: dt.datetime,
    ) -> Decision:
        """Decide one request. Never raises: malformed input denies with the reason in ``errors``.

        ``rule_ids``: the permitting ``@id``s on allow; the forbidding ``@id``s on a forbid;
        ``("default.deny",)`` when nothing permitted or the request could not be evaluated.
        """
        if action not in ACTIONS:
            return self._deny(f"unknown action {action!r}")
        try:
            request, entities = self._build(principal, action, resource, context or {}, now)
            result = cedarpy.is_authorized(request, self._policies, entities, schema=self._schema)
        except Exception as exc:  # fail closed on anything unexpected
            return self._deny(f"{type(exc).__name__}: {exc}")
        diag = result.diagnostics
        names = diag.id_annotations_by_reason
        rule_ids = tuple(sorted(names.get(r) or self._positional.get(r, r) for r in diag.reasons))
        errors = tuple(diag.errors)
        if result.allowed and not errors:
            return Decision(True, rule_ids, (), self.version)
        if result.allowed or not rule_ids:
            # An error anywhere denies, even if some other permit matched.
            return Decision(False, (DEFAULT_DENY,), errors, self.version)
        return Decision(False, rule_ids, errors, self.version)

    def check_case(self, case: Mapping[str, Any]) -> str | None:
        """Run one decision-table row; return a failure message, or None when it passes."""
        name = case.get("name", "<unnamed>")
        try:
            principal, action, resource, context, now = _case_request(case)
        except (KeyError, TypeError, ValueError) as exc:
            return f"{name}: malformed row: {exc}"
        d = self.decide(principal, action, resource, context, now=now)
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

    def check_decision_table(self, path: Path | str) -> list[str]:
        """Run ``policies/tests/decisions.yaml``; return one message per failing row (empty = pass)."""
        return [m for case in load_decision_cases(path) if (m := self.check_case(case))]


# --- decision table ---------------------------------------------------------------------------
#
# Rows are plain YAML; dates may be YAML dates or ISO strings, instants YAML timestamps or ISO
# strings (naive = UTC). ``resource.type`` is one of encounter, delegation, user, engagement, system.


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
    raise ValueError(f"unknown resource type {kind!r}")


def _case_request(
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
