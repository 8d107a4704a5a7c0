"""Errors under /fhir as an R4 OperationOutcome, from the same error body the rest of the API sends.

The status stays what the error is (401, 403, 404, 503 ...), except that bad input is 400, as FHIR
servers answer an invalid search parameter (the JSON API's 422). The parameter at fault is in
`issue.expression` and named again in `diagnostics`; a policy refusal's rule ids are codings of
`issue.details`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from audit.fhir.mapping import RULE_SYSTEM, coding

ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    409: "conflict",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "invalid",
    423: "lock-error",
    429: "throttled",
    503: "transient",
}


def fhir_status(status: int) -> int:
    return 400 if status == 422 else status


def operation_outcome(status: int, body: Mapping[str, Any]) -> dict[str, Any]:
    """`body` is our Error shape: {"error", "detail", "field"?, "rule_ids"?, ...}."""
    issue: dict[str, Any] = {
        "severity": "error" if status < 500 or status == 503 else "fatal",
        "code": ISSUE_CODES.get(status, "exception" if status >= 500 else "processing"),
        "details": {"text": str(body.get("error") or "Error")},
        "diagnostics": str(body.get("detail") or body.get("error") or "error"),
    }
    rule_ids = [str(r) for r in body.get("rule_ids") or []]
    if rule_ids:
        issue["details"]["coding"] = [coding(RULE_SYSTEM, rule) for rule in rule_ids]
    if body.get("field"):
        issue["expression"] = [str(body["field"])]
    return {"resourceType": "OperationOutcome", "issue": [issue]}
