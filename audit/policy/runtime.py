"""The loaded policies for this process: read once (at start-up), then shared."""

from __future__ import annotations

from functools import lru_cache

from audit.config import get_settings
from audit.policy.compliance import CompliancePolicy, load_compliance


@lru_cache
def get_compliance() -> CompliancePolicy:
    return load_compliance(get_settings().resolved_policies_dir / "compliance.yaml")
