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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cedarpy

from audit.policy.compliance import CompliancePolicy, PolicyError, load_compliance

__all__ = [
    "ACTIONS",
    "DEFAULT_DENY",
    "AuditFindingRes",
    "CodingAuditRes",
    "Decision",
    "DelegationRes",
    "EncounterRes",
    "EngagementRes",
    "PolicyEngine",
    "PolicyError",
    "Principal",
    "SystemRes",
    "UserRes",
]

DEFAULT_DENY = "default.deny"

ACTIONS: frozenset[str] = frozenset(
    {
        "encounter.create", "encounter.read", "encounter.list", "encounter.flag", "encounter.annotate",
        "encounter.resolve_flag",
        "code.add", "code.change", "code.void", "encounter.attest",
        "delegation.grant", "delegation.revoke", "delegation.read",
        "user.create", "user.read", "user.change_roles", "user.change_password", "user.deactivate",
        "user.reactivate", "user.unlock", "user.reset_password",
        "audit.read_events", "audit.verify", "audit.consistency", "report.view", "report.export",
        "engagement.open", "engagement.revoke", "engagement.read", "sample.draw", "codeset.import",
        "backup.create", "backup.restore", "import.run",
        "coding_audit.open", "coding_audit.sample", "coding_audit.read", "coding_audit.sign",
        "coding_audit.record_finding", "coding_audit.respond", "coding_audit.decide",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Principal:
    id: str
    roles: frozenset[str]
    credential_active: bool = False
    locked: bool = False
    signing_locked: bool = False


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


@dataclass(frozen=True)
class CodingAuditRes:
    """A coding audit: its auditor (who opened it) and its parties (providers of the sampled
    encounters and the authors and attesters of their lines)."""

    id: str
    auditor_id: str
    parties: frozenset[str] = frozenset()
    status: str = "open"


@dataclass(frozen=True)
class AuditFindingRes:
    """A finding of a coding audit on one sampled encounter (or one of its lines)."""

    id: str
    auditor_id: str
    provider_id: str
    date_of_service: dt.date
    coders: frozenset[str] = frozenset()
    attesters: frozenset[str] = frozenset()
    line_author_id: str | None = None


Resource = (
    EncounterRes
    | DelegationRes
    | UserRes
    | EngagementRes
    | SystemRes
    | CodingAuditRes
    | AuditFindingRes
    | None
)


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
    signing_locked = p.signing_locked if isinstance(p, Principal) else False
    return {
        "uid": _uid("User", p.id),
        "attrs": {"credential_active": active, "locked": locked, "signing_locked": signing_locked},
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
    if isinstance(obj, CodingAuditRes | AuditFindingRes):
        return _audit_entity(obj)
    raise TypeError(f"unsupported resource type {type(obj).__name__}")


def _audit_entity(obj: CodingAuditRes | AuditFindingRes) -> dict[str, Any]:
    attrs: dict[str, Any]
    if isinstance(obj, CodingAuditRes):
        attrs = {
            "auditor": _ref("User", obj.auditor_id),
            "parties": _users(obj.parties),
            "status": obj.status,
        }
        return {"uid": _uid("CodingAudit", obj.id), "attrs": attrs, "parents": []}
    attrs = {
        "auditor": _ref("User", obj.auditor_id),
        "provider_of_record": _ref("User", obj.provider_id),
        "date_of_service": yyyymmdd(obj.date_of_service),
        "coders": _users(obj.coders),
        "attesters": _users(obj.attesters),
    }
    if obj.line_author_id is not None:
        attrs["line_author"] = _ref("User", obj.line_author_id)
    return {"uid": _uid("AuditFinding", obj.id), "attrs": attrs, "parents": []}


@dataclass(frozen=True)
class _ContextRule:
    """How a context key enters the Cedar request: the Python type it must have, and its Cedar value
    (``convert`` None: an entity, referenced from the context as ``__entity`` and added to the
    request's entities)."""

    type_: type | tuple[type, ...]
    convert: Callable[[Any], Any] | None


def _same(value: Any) -> Any:
    return value


def _user_ref(user_id: str) -> dict[str, dict[str, str]]:
    return _ref("User", user_id)


_CONTEXT: dict[str, _ContextRule] = {
    "code_system": _ContextRule(str, _same),
    "via_integration": _ContextRule(bool, _same),
    "reauth_at": _ContextRule(dt.datetime, epoch_seconds),
    "scope_from": _ContextRule(dt.date, yyyymmdd),
    "scope_to": _ContextRule(dt.date, yyyymmdd),
    "scope_provider_ids": _ContextRule((frozenset, set, list, tuple), _users),
    "supervisor": _ContextRule(str, _user_ref),
    "delegation": _ContextRule(DelegationRes, None),
    "integration": _ContextRule(Principal, None),
    "engagement": _ContextRule(EngagementRes, None),
}
CONTEXT_KEYS: frozenset[str] = frozenset(_CONTEXT)


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
            rule = _CONTEXT.get(key)
            if rule is None:
                raise KeyError(f"unknown context key {key!r}")
            if value is None:
                continue
            _expect(value, rule.type_, key)
            if rule.convert is None:  # an entity referenced from the context
                ctx[key] = {"__entity": _entity(value)["uid"]}
                add(value)
            else:
                ctx[key] = rule.convert(value)
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
