"""Typed compliance parameters loaded from ``policies/compliance.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


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


class CodesetsPolicy(_Strict):
    """``unverified``: whether a line whose code could not be checked against a release in force on
    its date of service (no release loaded covers it, and the latest earlier one lacks the code)
    stops attestation until the release is imported (``block``) or is only reported (``warn``)."""

    unverified: EditMode = "block"


class DelegationsPolicy(_Strict):
    """A delegation is a standing grant of coding authority: it must end, and be renewed on review
    rather than run for years. ``max_days`` bounds valid_until - valid_from."""

    max_days: int = Field(default=365, gt=0, le=36500)


class BackoffRule(_Strict):
    """Failures allowed before back-off starts, and the longest wait back-off imposes."""

    free_failures: int = Field(ge=0)
    max_delay_seconds: int = Field(gt=0)


class SigninPolicy(_Strict):
    """Exponential back-off on failed sign-ins, per account name and per source address.

    After `free_failures` consecutive failures, the next attempt must wait
    base_delay_seconds * 2^(failures - free_failures - 1) seconds (at most `max_delay_seconds`); every
    attempt during the wait, right or wrong, gets the same 429 and no password check. A key with no
    failure for `forget_after_minutes` starts again from zero. Failures on one account within
    `report_window_seconds` become one event plus one summary event with the count.
    """

    account: BackoffRule
    address: BackoffRule
    base_delay_seconds: int = Field(gt=0)
    forget_after_minutes: int = Field(gt=0)
    report_window_seconds: int = Field(gt=0)


class SigningLockPolicy(_Strict):
    """Wrong passwords at signing (21 CFR 11.300(d)) lock signing, not the account."""

    max_failed_signings: int = Field(gt=0)
    lock_minutes: int = Field(gt=0)


class RetentionPolicy(_Strict):
    """How long records are kept, in years from the date of service: 42 CFR 424.516(f) asks a
    Medicare provider for seven (which covers HIPAA's six). Ledger events are never deleted: the
    `retention` report lists what is past it, and `audit archive --before DATE` writes it to a
    verifiable bundle for cold storage."""

    years: int = Field(default=7, gt=0, le=100)


class TokensPolicy(_Strict):
    lifetime_minutes: int = Field(gt=0)


class WebPolicy(_Strict):
    """Web page sessions. A session ends after `idle_timeout_minutes` without a request (HIPAA
    §164.312(a)(2)(iii) automatic logoff) and after `max_session_hours` whatever the activity."""

    idle_timeout_minutes: int = Field(default=15, gt=0, le=240)
    max_session_hours: int = Field(default=12, gt=0, le=24)


class CodingAuditsPolicy(_Strict):
    """Coding audits (issue 13). Over `error_rate_threshold` (the share of sampled encounters with an
    error; CMS Targeted Probe and Educate) a signed audit opens an education task per provider and a
    re-audit no sooner than `reaudit_after_days`; an overpayment found is reported and returned within
    `overpayment_days` of being identified (42 CFR 401.305)."""

    error_rate_threshold: float = Field(default=0.20, ge=0, le=1)
    reaudit_after_days: int = Field(default=45, ge=45, le=365)
    overpayment_days: int = Field(default=60, gt=0, le=60)
    overpayment_categories: list[str] = Field(
        default_factory=lambda: [
            "upcoded",
            "unsupported by documentation",
            "wrong provider of record",
            "unbundled",
        ]
    )
    signature_meaning: str = Field(
        default=(
            "I am the auditor of record of this coding audit; its findings and scores are my review "
            "of the sampled encounters against their documentation."
        ),
        min_length=10,
        max_length=2000,
    )


CodeSystem = Literal["CPT", "HCPCS", "ICD-10-CM", "ICD-10-PCS"]


class CompliancePolicy(_Strict):
    attestation: AttestationPolicy
    amendments: AmendmentPolicy = AmendmentPolicy()
    code_systems: list[CodeSystem] = Field(min_length=1)
    edits: EditsPolicy = EditsPolicy()
    codesets: CodesetsPolicy = CodesetsPolicy()
    delegations: DelegationsPolicy = DelegationsPolicy()
    signin: SigninPolicy
    signing_lock: SigningLockPolicy
    retention: RetentionPolicy = RetentionPolicy()
    tokens: TokensPolicy
    web: WebPolicy = WebPolicy()
    coding_audits: CodingAuditsPolicy = CodingAuditsPolicy()

    @model_validator(mode="before")
    @classmethod
    def _moved_settings(cls, data: Any) -> Any:
        if isinstance(data, dict) and "checkpoint" in data:
            raise ValueError(
                "checkpoint.interval_seconds moved to the AUDIT_CHECKPOINT_INTERVAL setting "
                "(an operational choice, default 1 second): remove the 'checkpoint' section"
            )
        if isinstance(data, dict) and "retention_years" in data:
            raise ValueError(
                f"retention_years moved to retention.years (years from the date of service; default 7, "
                f"42 CFR 424.516(f)): replace 'retention_years: {data['retention_years']}' with "
                f"'retention: {{years: {data['retention_years']}}}'"
            )
        return data

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
