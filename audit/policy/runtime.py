"""The loaded policies for this process: read and validated once (at start-up), then shared."""

from __future__ import annotations

from functools import lru_cache

from audit.config import get_settings
from audit.policy.compliance import CompliancePolicy
from audit.policy.engine import PolicyEngine
from audit.policy.explain import Explainer


@lru_cache
def get_policy_engine() -> PolicyEngine:
    """Raises PolicyError (and so the service refuses to start) on an invalid policy folder."""
    return PolicyEngine.load(get_settings().resolved_policies_dir)


def get_compliance() -> CompliancePolicy:
    return get_policy_engine().compliance


@lru_cache
def _explainer_for(engine: PolicyEngine, policies_dir: str) -> Explainer:
    return Explainer(engine, policies_dir)


def get_explainer() -> Explainer:
    """The probes that explain this process's policies' refusals (built on the first refusal)."""
    return _explainer_for(get_policy_engine(), str(get_settings().resolved_policies_dir))
