"""The pages each role gets in the menu and on the home page. Add a page here (role, path, label,
what it is for); a link shows only when the user has the role and the path is mounted."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fastapi import Request

from audit.principal import CurrentUser

ROLE_LINKS = (
    ("provider", "/provider/queue", "Sign-off queue", "Encounters waiting for your attestation."),
    ("provider", "/provider/delegations", "Delegations", "Which coders may code for you."),
    ("coder", "/coder/worklist", "Worklist", "Encounters of the providers who delegated to you."),
    ("compliance", "/compliance", "Compliance", "Changes, late sign-offs, flags, the ledger, reports."),
    ("compliance", "/reports", "Reports", "Every report, with CSV and PDF downloads."),
    (
        "compliance",
        "/compliance/engagements",
        "Engagements",
        "Open and revoke external auditors' engagements.",
    ),
    ("compliance", "/audits", "Audits", "Coding audits: open one, draw its sample, record findings."),
    ("admin", "/admin/users", "Users", "Add, deactivate, unlock users; change roles."),
    ("auditor", "/auditor", "Engagements", "Your engagements, their reports and bundles."),
    ("auditor", "/audits", "Audits", "Your coding audits: open one, draw its sample, record findings."),
    ("provider", "/audits", "Audit findings", "Coding-audit findings on your encounters, to answer."),
    ("coder", "/audits", "Audit findings", "Coding-audit findings on lines you entered, to answer."),
)


@lru_cache(maxsize=4)
def _mounted(app: Any) -> frozenset[str]:
    from audit.openapi import api_routes

    return frozenset(route.path_format for route in api_routes(list(app.routes)))


def links(request: Request, user: CurrentUser | None) -> list[dict[str, str]]:
    if user is None:
        return []
    mounted = _mounted(request.app)
    shown: dict[str, dict[str, str]] = {}  # one link per page, whichever of the user's roles it is for
    for role, href, label, text in ROLE_LINKS:
        if user.has(role) and href in mounted and href not in shown:
            shown[href] = {"href": href, "label": label, "text": text}
    return list(shown.values())
