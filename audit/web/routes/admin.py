"""Administrators' pages: users (add, deactivate or reactivate, unlock, reset a password, change
roles). Every change goes through `audit.user.admin` (Cedar decides, the ledger records)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import String, cast, func, select

from audit.deps import SessionDep
from audit.inputs import RevokeIn
from audit.models import utcnow
from audit.policy.engine import UserRes
from audit.policy.filters import USR, user_clause
from audit.policy.guard import Target, authorize
from audit.policy.scope import user_list_scope
from audit.principal import ROLES
from audit.report.listing import Column, Page
from audit.user import admin as admin_service
from audit.user import service as users
from audit.user.schemas import UserCreate
from audit.web.deps import PageUser, check_csrf, require_role
from audit.web.forms import model
from audit.web.tables import page_request
from audit.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(check_csrf)])
Reason = Annotated[str, Form(min_length=1, max_length=500)]
COLUMNS = (
    Column("display_name", "Name"), Column("username", "Username"), Column("roles", "Roles"),
    Column("npi", "NPI"), Column("credential", "Credential"), Column("is_active", "Active"),
    Column("locked", "Locked"),
)  # fmt: skip


@router.get("/admin/users")
def user_list(request: Request, session: SessionDep, user: PageUser) -> Response:
    require_role(user, "admin", "users")
    req = page_request(request.query_params, sortable=[c.key for c in COLUMNS])
    _, scope = user_list_scope(user)
    now = utcnow()
    locked = (USR.c.locked_until > now) | (USR.c.signing_locked_until > now)
    stmt = select(
        USR.c.id, USR.c.display_name, USR.c.username, cast(USR.c.roles, String).label("roles"), USR.c.npi,
        USR.c.credential, USR.c.is_active, locked.label("locked"),
    ).where(user_clause(scope))  # fmt: skip
    total = int(session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one())
    sort = req.sort or "display_name"
    by = stmt.selected_columns[sort]
    ordered = stmt.order_by(by.desc() if req.desc else by.asc(), USR.c.id)
    rows = [
        dict(r) for r in session.execute(ordered.limit(req.size).offset((req.page - 1) * req.size)).mappings()
    ]
    for r in rows:
        r["roles"] = ", ".join(sorted(_roles(r["roles"])))
        r["is_active"] = "yes" if r["is_active"] else "no"
        r["locked"] = "locked" if r["locked"] else ""
    page = Page("users", "Users", list(COLUMNS), rows, total, req.page, req.size, sort, bool(req.desc))
    return render(request, "admin_users.html", {"page": page, "roles": ROLES, "error": None})


def _roles(value: Any) -> list[str]:
    import json

    return list(json.loads(value)) if isinstance(value, str) else list(value or [])


@router.post("/admin/users")
def add_user(
    request: Request,
    session: SessionDep,
    user: PageUser,
    username: Annotated[str, Form(max_length=64)],
    display_name: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=256)],
    roles: Annotated[list[str], Form(max_length=len(ROLES))],
    npi: Annotated[str, Form(max_length=10)] = "",
    credential: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    require_role(user, "admin", "users")
    fields = {"username": username, "display_name": display_name, "password": password, "roles": roles,
              "npi": npi or None, "credential": credential or None}  # fmt: skip
    data = model(UserCreate, fields)
    created = users.create_user(session, user=user, data=data)
    return RedirectResponse(f"/admin/users/{created.id}", status_code=303)


@router.get("/admin/users/{user_id}")
def user_page(request: Request, session: SessionDep, user: PageUser, user_id: str) -> Response:
    require_role(user, "admin", "users")
    row = users.get_user(session, user_id[:36])
    authorize(user, "user.read", Target("user", row.id), UserRes(id=row.id, roles=frozenset(row.roles)))
    now = utcnow()
    locked = any(t is not None and t > now for t in (row.locked_until, row.signing_locked_until))
    return render(request, "admin_user.html", {"u": row, "roles": ROLES, "locked": locked})


def _back(user_id: str) -> RedirectResponse:
    return RedirectResponse(f"/admin/users/{user_id}", status_code=303)


@router.post("/admin/users/{user_id}/active")
def set_active(session: SessionDep, user: PageUser, user_id: str, reason: Reason,
               active: Annotated[str, Form(pattern="^(yes|no)$")]) -> Response:  # fmt: skip
    reason = model(RevokeIn, {"reason": reason}).reason
    admin_service.set_active(session, admin=user, user_id=user_id[:36], active=active == "yes", reason=reason)
    return _back(user_id)


@router.post("/admin/users/{user_id}/unlock")
def unlock(session: SessionDep, user: PageUser, user_id: str, reason: Reason) -> Response:
    reason = model(RevokeIn, {"reason": reason}).reason
    admin_service.unlock(session, admin=user, user_id=user_id[:36], reason=reason)
    return _back(user_id)


@router.post("/admin/users/{user_id}/password")
def reset_password(session: SessionDep, user: PageUser, user_id: str,
                   new_password: Annotated[str, Form(max_length=256)]) -> Response:  # fmt: skip
    admin_service.reset_password(session, admin=user, user_id=user_id[:36], new_password=new_password)
    return _back(user_id)


@router.post("/admin/users/{user_id}/roles")
def change_roles(session: SessionDep, user: PageUser, user_id: str, reason: Reason,
                 roles: Annotated[list[str], Form(max_length=len(ROLES))]) -> Response:  # fmt: skip
    reason = model(RevokeIn, {"reason": reason}).reason
    admin_service.change_roles(session, admin=user, user_id=user_id[:36], roles=roles, reason=reason)
    return _back(user_id)
