"""Why a request was refused, in words a coder understands, asked of Cedar itself.

The decision always comes from `PolicyEngine.decide`; this module only explains a refusal. A Cedar
deny by default carries no diagnostics (no policy was satisfied), so each permit rule is split into
probes, each a one-condition permit evaluated by Cedar on the very request and entities the decision
used (`PolicyEngine._build`):

- ``<rule>#action``: the rule's action scope (does this rule speak of the action at all?);
- ``<rule>#principal``: its principal scope (the role it asks for);
- ``<rule>#0``, ``#1``, ...: each top-level ``&&`` condition of its ``when`` clause, in order.

A rule is a candidate when its action and principal probes hold; its first condition that does not
hold (false or an evaluation error, as Cedar's ``&&`` stops there) is why it did not permit. That
condition's Cedar text is put into words by `PHRASES` (the Cedar text stays the fallback, so a new
rule is explained, if less kindly, before it has a phrase). A forbid that decided is explained by its
``@explain`` annotation in the policy file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cedarpy

from audit.policy.engine import (
    DEFAULT_DENY,
    Decision,
    DelegationRes,
    EncounterRes,
    EngagementRes,
    PolicyEngine,
    Principal,
    Resource,
)

ANY = {"op": "All"}
MAX_DETAILS = 5


@dataclass(frozen=True)
class UserRef:
    """A user named in an explanation: shown by display name when one can be read, else by id."""

    id: str


@dataclass(frozen=True)
class Phrase:
    template: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def render(self, name: Callable[[str], str]) -> str:
        shown = {k: _shown(v, name) for k, v in self.values.items()}
        return self.template.format(**shown)


def _shown(value: Any, name: Callable[[str], str]) -> Any:
    if isinstance(value, UserRef):
        return name(value.id)
    return value.render(name) if isinstance(value, Phrase) else value


@dataclass(frozen=True)
class Explanation:
    """Why it was refused: the main reasons (`headlines`), and what each delegation or engagement
    tried lacked (`details`)."""

    headlines: tuple[Phrase, ...]
    details: tuple[Phrase, ...] = ()

    def text(self, name: Callable[[str], str] = lambda user_id: f"user {user_id}") -> str:
        heads = _unique(p.render(name) for p in self.headlines)
        details = _unique(p.render(name) for p in self.details)
        if len(details) > MAX_DETAILS:  # up to 20 candidate delegations: keep the answer and event short
            details = [*details[:MAX_DETAILS], f"and {len(details) - MAX_DETAILS} more"]
        out = "; ".join(heads)
        return f"{out} ({'; '.join(details)})" if details else out


def _unique(items: Any) -> list[str]:
    return list(dict.fromkeys(items))


@dataclass(frozen=True)
class Probe:
    rule_id: str
    key: str  # "action", "principal" or the condition's position
    text: str  # the condition in Cedar syntax (normalised spacing)


# --- building the probes ------------------------------------------------------------------------------


def _conjuncts(expr: dict[str, Any]) -> list[dict[str, Any]]:
    if "&&" in expr:
        return _conjuncts(expr["&&"]["left"]) + _conjuncts(expr["&&"]["right"])
    return [expr]


def _policy(probe_id: str, scope: Mapping[str, Any], conditions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "effect": "permit",
        "principal": scope.get("principal", ANY),
        "action": scope.get("action", ANY),
        "resource": scope.get("resource", ANY),
        "conditions": conditions,
        "annotations": {"id": probe_id},
    }


def _policy_set(policies: dict[str, Any]) -> str:
    return json.dumps({"staticPolicies": policies, "templates": {}, "templateLinks": []})


def _cedar_text(policy: dict[str, Any]) -> str:
    text = cedarpy.policies_from_json_str(_policy_set({"p": policy}))
    body = text.split("when", 1)[1] if "when" in text else text
    return " ".join(body.split()).removeprefix("{ ").removesuffix(" };").removesuffix("};")


def _rule_probes(rule_id: str, policy: dict[str, Any]) -> list[tuple[Probe, dict[str, Any]]]:
    out: list[tuple[Probe, dict[str, Any]]] = []
    for part in ("action", "principal", "resource"):
        if part == "resource" and policy["resource"] == ANY:
            continue
        probe_id = f"{rule_id}#{part}"
        out.append((Probe(rule_id, part, part), _policy(probe_id, {part: policy[part]}, [])))
    position = 0
    for condition in policy.get("conditions", []):
        body = condition["body"]
        parts = _conjuncts(body) if condition["kind"] == "when" else [{"!": {"arg": body}}]
        for conjunct in parts:
            probe_id = f"{rule_id}#{position}"
            probed = _policy(probe_id, {}, [{"kind": "when", "body": conjunct}])
            out.append((Probe(rule_id, str(position), _cedar_text(probed)), probed))
            position += 1
    return out


class Explainer:
    """The permit rules split into probes (one Cedar policy set), and the forbids' own words."""

    def __init__(self, engine: PolicyEngine, policies_dir: Path | str) -> None:
        self.engine = engine
        self.probes: dict[str, Probe] = {}
        self.rules: dict[str, list[Probe]] = {}
        self.forbid_words: dict[str, str] = {}
        self._rule_policies: dict[str, list[dict[str, Any]]] = {}
        self._by_action: dict[str, cedarpy.PolicySet | None] = {}
        est_policies: dict[str, Any] = {}
        for path in sorted((Path(policies_dir) / "access").glob("*.cedar")):
            est = json.loads(cedarpy.policies_to_json_str(path.read_text(encoding="utf-8")))
            for policy in est.get("staticPolicies", {}).values():
                annotations = policy.get("annotations") or {}
                rule_id = annotations["id"]
                if policy["effect"] == "forbid":
                    self.forbid_words[rule_id] = annotations.get("explain") or f"rule {rule_id} forbids it"
                    continue
                for probe, probe_policy in _rule_probes(rule_id, policy):
                    probe_id = probe_policy["annotations"]["id"]
                    self.probes[probe_id] = probe
                    self.rules.setdefault(rule_id, []).append(probe)
                    self._rule_policies.setdefault(rule_id, []).append(probe_policy)
                    est_policies[f"p{len(est_policies)}"] = probe_policy
        text = cedarpy.policies_from_json_str(_policy_set(est_policies))
        self._set = cedarpy.PolicySet.from_str(text)

    def holding(
        self, principal: Principal, action: str, resource: Resource, context: Mapping[str, Any], now: Any
    ) -> set[str] | None:
        """The probe ids that hold for this request (None when it cannot be evaluated)."""
        try:
            request, entities = self.engine._build(principal, action, resource, context, now)
            if action not in self._by_action:
                self._by_action[action] = self._probes_for(self._evaluate(self._set, request, entities))
            probes = self._by_action[action]
            return self._evaluate(probes, request, entities) if probes is not None else set()
        except Exception:  # the decision already failed closed; its errors explain it
            return None

    def _evaluate(self, policies: cedarpy.PolicySet, request: Any, entities: Any) -> set[str]:
        result = cedarpy.is_authorized(request, policies, entities, schema=self.engine._schema)
        names = result.diagnostics.id_annotations_by_reason
        return {names.get(r, r) for r in result.diagnostics.reasons}

    def _probes_for(self, holding: set[str]) -> cedarpy.PolicySet | None:
        """The probes of the rules whose action scope holds (it depends on the action alone), so
        later refusals of that action evaluate a few probes instead of every rule's."""
        rules = [rule for rule in self.rules if f"{rule}#action" in holding]
        policies = [policy for rule in rules for policy in self._rule_policies[rule]]
        if not policies:
            return None
        text = cedarpy.policies_from_json_str(_policy_set({f"p{i}": p for i, p in enumerate(policies)}))
        return cedarpy.PolicySet.from_str(text)

    def may_read(
        self, principal: Principal, resource: Resource, attempts: Sequence[Mapping[str, Any]], now: Any
    ) -> bool:
        """Whether the caller may read the encounter (`encounter.read`, decided by the engine on the same
        facts): only then may an explanation quote its provider of record and date of service."""
        if not isinstance(resource, EncounterRes):
            return True
        return any(
            self.engine.decide(principal, "encounter.read", resource, c, now=now).allowed for c in attempts
        )

    def first_failures(self, holding: set[str]) -> list[Probe]:
        """For each candidate rule (action and principal scope hold), its first condition that does not."""
        failures = []
        for probes in self.rules.values():
            scope = [p for p in probes if not p.key.isdigit()]
            if not all(f"{p.rule_id}#{p.key}" in holding for p in scope):
                continue
            failed = next((p for p in probes if f"{p.rule_id}#{p.key}" not in holding), None)
            if failed is not None:
                failures.append(failed)
        return failures

    def explain(
        self,
        principal: Principal,
        action: str,
        resource: Resource,
        attempts: Sequence[Mapping[str, Any]],
        decision: Decision,
        now: Any,
    ) -> Explanation:
        """Why `decision` (the refusal of the first attempt and of every other attempt, e.g. one per
        candidate delegation) refused."""
        forbids = [r for r in decision.rule_ids if r != DEFAULT_DENY]
        if forbids:
            return Explanation(
                tuple(Phrase(self.forbid_words.get(r, f"rule {r} forbids it")) for r in forbids)
            )
        if decision.errors:
            return Explanation(
                (Phrase("the request could not be evaluated: {e}", {"e": decision.errors[0]}),)
            )
        headlines: list[Phrase] = []
        details: list[Phrase] = []
        disclosed = self.may_read(principal, resource, attempts, now)
        for i, context in enumerate(attempts):
            holding = self.holding(principal, action, resource, context, now)
            if holding is None:
                continue
            facts = Facts(principal, resource, context, self.engine, disclosed)
            for probe in self.first_failures(holding):
                (headlines if i == 0 else details).append(phrase(probe, facts))
        if not headlines:
            roles = (
                " or ".join(ROLE_NOUNS.get(r, r) for r in sorted(principal.roles)) or "user without a role"
            )
            doing = ACTION_WORDS.get(action, action)
            headlines.append(
                Phrase(
                    "no rule lets {a} {roles} {doing}", {"a": _article(roles), "roles": roles, "doing": doing}
                )
            )
        return Explanation(tuple(headlines), tuple(details))


# --- words ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """The values a phrase may quote, all from the request Cedar judged."""

    principal: Principal
    resource: Resource
    context: Mapping[str, Any]
    engine: PolicyEngine
    disclosed: bool = True  # whether the caller may read the resource, so its facts may be quoted

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code_system": self.context.get("code_system") or "its code system",
            "reauth_max_age": self.engine.compliance.attestation.reauth_max_age_seconds,
            "scope_from": _day(self.context.get("scope_from")),
            "scope_to": _day(self.context.get("scope_to")),
        }
        res = self.resource
        if isinstance(res, EncounterRes):
            system = self.context.get("code_system")
            if self.disclosed:
                out.update(provider=UserRef(res.rendering_provider_id), dos=_day(res.date_of_service))
                out["named"] = Phrase(" ({provider})", {"provider": out["provider"]})
                on = f"the date of service {out['dos']}"
                out["covering"] = f"{system} on {out['dos']}" if system else on
            else:  # the caller may not read this encounter: say nothing of its provider or date
                out.update(
                    provider="this encounter's provider of record", dos="its date of service", named=""
                )
                out["covering"] = f"{system} on its date of service" if system else "its date of service"
        d = self.context.get("delegation")
        if isinstance(d, DelegationRes):
            out.update(
                d=d.id[:8],
                dprovider=UserRef(d.provider_id),
                # a delegation tried is from the encounter's provider: name them only to a reader
                dfrom=Phrase(" from {p}", {"p": UserRef(d.provider_id)}) if self.disclosed else "",
                systems=", ".join(sorted(d.code_systems)),
                valid_from=_day(d.valid_from),
                valid_until=_day(d.valid_until),
                dos_from=_day(d.dos_from),
                dos_until=_day(d.dos_until),
            )
        e = self.context.get("engagement")
        if isinstance(e, EngagementRes):
            out.update(e=e.id[:8], e_from=_day(e.date_from), e_to=_day(e.date_to), expires=_day(e.expires_at))
        return out


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _day(value: Any) -> str:
    if value is None:
        return "?"
    return str(value.date().isoformat() if hasattr(value, "hour") else value.isoformat())


# (a fragment of the condition's Cedar text, the words). First match wins; more specific first.
PHRASES: tuple[tuple[str, str], ...] = (
    ("context has delegation", "no active delegation from {provider} covers {covering}"),
    ("(context.delegation).revoked", "delegation {d}{dfrom} was revoked"),
    ("((context.delegation).coder) == principal", "delegation {d} was granted to another coder"),
    (
        "((context.delegation).provider) == (resource.rendering_provider)",
        "delegation {d} is from {dprovider}, not from this encounter's provider of record{named}",
    ),
    (
        "((context.delegation).valid_from) <= (context.now)",
        "delegation {d}{dfrom} starts on {valid_from}",
    ),
    (
        "(context.now) <= ((context.delegation).valid_until)",
        "delegation {d}{dfrom} ended on {valid_until}",
    ),
    (
        "code_systems).contains(context.code_system)",
        "delegation {d}{dfrom} covers {systems}, not {code_system}",
    ),
    (
        "(context.delegation) has dos_from) then ((resource",
        "delegation {d}{dfrom} covers dates of service from {dos_from}, not {dos}",
    ),
    (
        "(context.delegation) has dos_until) then ((resource",
        "delegation {d}{dfrom} covers dates of service until {dos_until}, not {dos}",
    ),
    (
        "(context.delegation) has dos_from) then ((context",
        "delegation {d} starts at date of service {dos_from}",
    ),
    (
        "(context.delegation) has dos_until) then ((context",
        "delegation {d} ends at date of service {dos_until}",
    ),
    ("context has code_system", "the line names no code system"),
    (
        "((resource.rendering_provider) == principal) || ((resource.supervising_providers)",
        "you are neither this encounter's provider of record{named} nor one of its supervising providers",
    ),
    ("(resource.rendering_provider) == principal", "you are not this encounter's provider of record{named}"),
    ("principal.credential_active", "your credential is not active"),
    ("context has reauth_at", "signing needs your password re-entered"),
    ("(context.reauth_at)", "your password must be re-entered within {reauth_max_age} seconds of signing"),
    ("context has engagement", "you have no live engagement that covers this"),
    ("((context.engagement).auditor) == principal", "engagement {e} is another auditor's"),
    ("(context.engagement).revoked", "engagement {e} was revoked"),
    ("((context.engagement).expires_at)", "engagement {e} expired on {expires}"),
    ("(context.scope_from) <= (context.scope_to)", "the dates asked for end before they start"),
    (
        "((context.engagement).date_from) <= (resource.date_of_service)",
        "engagement {e} covers dates of service from {e_from}, not {dos}",
    ),
    (
        "(resource.date_of_service) <= ((context.engagement).date_to)",
        "engagement {e} covers dates of service until {e_to}, not {dos}",
    ),
    (
        "context.engagement).date_from) <= (context.scope_from)",
        "engagement {e} covers dates of service from {e_from}, not {scope_from}",
    ),
    (
        "(context.scope_to) <= ((context.engagement).date_to)",
        "engagement {e} covers dates of service until {e_to}, not {scope_to}",
    ),
    ("(context.engagement).provider_ids", "engagement {e} does not cover the provider(s) asked for"),
    ("resource has date_of_service", "the encounter has no date of service"),
    ("context has scope_from", "the dates of service to read are not given"),
    ("context has scope_to", "the dates of service to read are not given"),
    ("(context.scope_provider_ids) == [principal]", "a provider may read only their own encounters"),
    ("context has scope_provider_ids", "a provider may read only their own encounters"),
    ("(resource.coder) != principal", "a coder may not grant a delegation to themselves"),
    (
        "(context.scope_provider_ids) == [(context.delegation).provider]",
        "delegation {d} is from another provider",
    ),
    (
        '((principal in Role::"provider") && ((resource.provider) == principal))',
        "you are neither the provider nor the coder of this delegation",
    ),
    ("(resource.provider) == principal", "a provider grants and revokes only their own delegations"),
    (
        "then (((context.engagement).date_from) <= (resource.dos_until))",
        "the delegation ends before engagement {e}",
    ),
    (
        "then ((resource.dos_from) <= ((context.engagement).date_to))",
        "the delegation starts after engagement {e}",
    ),
    ("resource == principal", "it is about another user"),
    ("(resource.auditor) == principal", "this coding audit is another auditor's"),
    (
        '(principal in Role::"provider") || (principal in Role::"coder")',
        "only the auditor, compliance, and the providers and coders it judges may read a coding audit",
    ),
    ("(resource.parties).contains(principal)", "your coding is not part of this audit"),
    (
        "(resource.provider_of_record) == principal",
        "you are not the provider of record of this finding's encounter",
    ),
    ("resource has line_author", "the finding is not about a line you entered"),
    ("(resource.line_author) == principal", "the finding is not about a line you entered"),
)

ROLE_NOUNS = {
    "compliance": "compliance officer",
    "admin": "administrator",
    "integration": "integration account",
}

#: What an action is, for "no rule lets a coder attest encounters".
ACTION_WORDS = {
    "encounter.create": "create encounters",
    "encounter.read": "read this encounter",
    "encounter.list": "list encounters",
    "encounter.flag": "flag encounters",
    "encounter.annotate": "annotate encounters",
    "code.add": "add codes",
    "code.change": "change codes",
    "code.void": "void codes",
    "encounter.attest": "attest encounters",
    "delegation.grant": "grant delegations",
    "delegation.revoke": "revoke delegations",
    "delegation.read": "read delegations",
    "report.view": "view reports",
    "report.export": "export bundles",
    "user.create": "create users",
    "user.read": "read users",
    "user.change_roles": "change roles",
    "audit.read_events": "read the ledger",
    "audit.verify": "verify the ledger",
    "sample.draw": "draw samples",
    "engagement.open": "open engagements",
    "engagement.revoke": "revoke engagements",
    "engagement.read": "list engagements",
    "coding_audit.open": "open coding audits",
    "coding_audit.sample": "draw coding-audit samples",
    "coding_audit.read": "read this coding audit",
    "coding_audit.sign": "sign this coding audit",
    "coding_audit.record_finding": "record coding-audit findings",
    "coding_audit.respond": "answer this finding",
    "coding_audit.decide": "decide disputed findings",
}


def phrase(probe: Probe, facts: Facts) -> Phrase:
    values = facts.values()
    if probe.key == "principal":
        return Phrase("rule {rule} is for another role", {"rule": probe.rule_id})
    for fragment, words in PHRASES:
        if fragment in probe.text:
            try:
                words.format(**{k: "" for k in values})
            except KeyError:
                break  # a phrase needing a fact this request lacks: fall back to the condition
            return Phrase(words, values)
    return Phrase("rule {rule} requires {condition}", {"rule": probe.rule_id, "condition": probe.text})
