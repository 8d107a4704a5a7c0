"""Typed compliance parameters loaded from ``policies/compliance.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class PolicyError(ValueError):
    """The policy directory (Cedar rules, schema or compliance parameters) is unusable.

    The service refuses to start on this error; the message names the file and the problem.
    """


class _Strict(BaseModel):
    # Unknown keys are typos in a reviewed file: refuse them rather than silently ignore them.
    model_config = ConfigDict(extra="forbid", frozen=True)


class AttestationPolicy(_Strict):
    deadline_days: int = Field(ge=0)
    meaning: str = Field(min_length=1)
    reauth_max_age_seconds: int = Field(gt=0)


class AmendmentPolicy(_Strict):
    reason_required_after_attestation: bool = True
    reason_required_always: bool = False


EditMode = Literal["block", "warn"]


class EditsPolicy(_Strict):
    ncci_mode: EditMode = "block"
    mue_mode: EditMode = "block"


class LockoutPolicy(_Strict):
    max_failed_signins: int = Field(gt=0)
    max_failed_signings: int = Field(gt=0)
    duration_minutes: int = Field(gt=0)


class CheckpointPolicy(_Strict):
    interval_seconds: int = Field(gt=0)


class TokensPolicy(_Strict):
    lifetime_minutes: int = Field(gt=0)


CodeSystem = Literal["CPT", "HCPCS", "ICD-10-CM", "ICD-10-PCS"]


class CompliancePolicy(_Strict):
    attestation: AttestationPolicy
    amendments: AmendmentPolicy = AmendmentPolicy()
    code_systems: list[CodeSystem] = Field(min_length=1)
    edits: EditsPolicy = EditsPolicy()
    lockout: LockoutPolicy
    retention_years: int = Field(gt=0)
    checkpoint: CheckpointPolicy
    tokens: TokensPolicy

    @field_validator("code_systems")
    @classmethod
    def _no_duplicates(cls, v: list[CodeSystem]) -> list[CodeSystem]:
        if len(set(v)) != len(v):
            raise ValueError("duplicate code system")
        return v


def load_compliance(path: Path | str) -> CompliancePolicy:
    """Read and validate the compliance YAML; raise :class:`PolicyError` naming the file and field."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"{p}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"{p}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PolicyError(f"{p}: expected a mapping at the top level")
    try:
        return CompliancePolicy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise PolicyError(f"{p}: {problems}") from exc
