"""The OpenAPI document says what every route can answer, in one place.

- Every error has one shape, the `Error` component (`{"error", "detail", "field"?, ...}`); FastAPI's
  own 422 schema (which we never send) is replaced by it. Under /fhir the shape is the
  `OperationOutcome` component (application/fhir+json), and bad input is 400 rather than 422.
- Each operation lists the statuses it can return, derived from what the route is (authenticated:
  401/403/423; has parameters: 422; path parameters: 404; a body: 400/413; uses the database: 503)
  plus those a route declares with `responses=error_responses(...)`.
- Links (`LINKS`) tell a client or a fuzzer where the ids in a response lead (e.g. from a new
  encounter's `id` to its codes), so stateful tests can follow them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "description": "Every error response. `field` names the offending input when there is one.",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "description": "The kind, e.g. InvalidInput, Forbidden, Locked"},
        "detail": {"type": "string"},
        "field": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "detail": {"type": "string"}},
            },
        },
        "rule_ids": {"type": "array", "items": {"type": "string"}},
        "policy_version": {"type": "string"},
        "explanation": {
            "type": "string",
            "description": "A 403's reason in words: which condition of the rules did not hold",
        },
        "retry_after": {"type": "integer", "minimum": 0},
    },
    "additionalProperties": True,
}
OUTCOME_REF = {"$ref": "#/components/schemas/OperationOutcome"}
OUTCOME_SCHEMA: dict[str, Any] = {
    "title": "OperationOutcome",
    "type": "object",
    "description": (
        "Every error under /fhir: a FHIR R4 OperationOutcome. `issue[0].expression` names the offending "
        "parameter; bad input is 400 there (422 elsewhere)."
    ),
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
        "issue": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"type": "string", "enum": ["fatal", "error", "warning", "information"]},
                    "code": {"type": "string"},
                    "details": {"type": "object"},
                    "diagnostics": {"type": "string"},
                    "expression": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
    "additionalProperties": True,
}
FHIR_PREFIX = "/fhir/"
RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before trying again", "schema": {"type": "integer"}}
}
WITH_RETRY_AFTER = {429, 503}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route decorator: statuses this route returns beyond those derived."""
    return {status: {"description": HTTPStatus(status).phrase} for status in statuses}


# A report's 200: JSON, or with `format=csv|pdf` a download (audit.report.render.MEDIA_TYPES).
REPORT_OK: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The report as JSON, or as a CSV or PDF download (`format`)",
        "content": {"application/json": {}, "text/csv": {}, "application/pdf": {}},
    }
}


@dataclass(frozen=True)
class Link:
    """From the `status` response of (method, path) to another operation, filling its parameters
    from the response (OpenAPI runtime expressions)."""

    source: tuple[str, str]
    status: str
    name: str
    target: tuple[str, str]
    parameters: dict[str, str]


ENC = "/api/v1/encounters"
ONE = f"{ENC}/{{encounter_id}}"
LINE = f"{ONE}/codes/{{line_id}}"
DLG = "/api/v1/delegations"
ENG = "/api/v1/engagements"
_BY_ID = {"path.encounter_id": "$response.body#/id"}
_LINE = {"path.encounter_id": "$response.body#/encounter_id", "path.line_id": "$response.body#/id"}
_VERSIONED = {**_LINE, "header.If-Match": "$response.header.ETag"}  # a quoted string, as sent back
_ITS_ENCOUNTER = {"path.encounter_id": "$response.body#/encounter_id"}
LINKS: tuple[Link, ...] = (
    Link(("POST", ENC), "201", "GetEncounter", ("GET", ONE), _BY_ID),
    Link(("POST", ENC), "201", "AddCode", ("POST", f"{ONE}/codes"), _BY_ID),
    Link(("POST", ENC), "201", "History", ("GET", f"{ONE}/history"), _BY_ID),
    Link(("POST", ENC), "201", "Attest", ("POST", f"{ONE}/attestations"), _BY_ID),
    Link(("POST", ENC), "201", "Flag", ("POST", f"{ONE}/flags"), _BY_ID),
    Link(("POST", ENC), "201", "Annotate", ("POST", f"{ONE}/annotations"), _BY_ID),
    Link(("GET", ENC), "200", "GetFirst", ("GET", ONE), {"path.encounter_id": "$response.body#/items/0/id"}),
    Link(("POST", f"{ONE}/codes"), "201", "ChangeCode", ("PATCH", LINE), _VERSIONED),
    Link(("POST", f"{ONE}/codes"), "201", "VoidCode", ("POST", f"{LINE}/void"), _LINE),
    Link(("POST", f"{ONE}/codes"), "201", "Attest", ("POST", f"{ONE}/attestations"), _ITS_ENCOUNTER),
    Link(("PATCH", LINE), "200", "ChangeAgain", ("PATCH", LINE), _VERSIONED),
    Link(("PATCH", LINE), "200", "VoidCode", ("POST", f"{LINE}/void"), _LINE),
    Link(("POST", DLG), "201", "Revoke", ("POST", f"{DLG}/{{delegation_id}}/revoke"),
         {"path.delegation_id": "$response.body#/id"}),
    Link(("POST", ENG), "201", "Revoke", ("POST", f"{ENG}/{{engagement_id}}/revoke"),
         {"path.engagement_id": "$response.body#/id"}),
)  # fmt: skip


@dataclass(frozen=True)
class Markers:
    """Dependencies that tell what a route is: it reaches the database, it needs a signed-in user."""

    database: frozenset[Callable[..., Any]]
    authentication: frozenset[Callable[..., Any]]


def install(app: FastAPI, markers: Markers) -> None:
    """Replace `app.openapi` with one that documents errors and links (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            document_errors(schema, app.routes, markers)
            add_links(schema, LINKS)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def api_routes(routes: list[Any]) -> Iterator[Any]:
    """Every API route, with its full path: newer FastAPI includes routers lazily, and
    `iter_route_contexts` resolves them (each context answers like the APIRoute)."""
    from fastapi import routing

    iterate = getattr(routing, "iter_route_contexts", None)
    if iterate is None:
        yield from (r for r in routes if isinstance(r, APIRoute))
        return
    for context in iterate(routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method some route serves at `path` (for a 405's Allow header)."""
    from starlette.routing import compile_path

    methods: set[str] = set()
    for route in api_routes(app.routes):
        if compile_path(route.path_format)[0].match(path):
            methods |= set(route.methods or ())
    return sorted(methods)


def _operations(schema: dict[str, Any], routes: list[Any]) -> Iterator[tuple[Any, dict[str, Any]]]:
    for route in api_routes(routes):
        if not route.include_in_schema:
            continue
        for method in sorted(route.methods or ()):
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is not None:
                yield route, operation


def statuses_for(route: Any, markers: Markers) -> set[int]:
    params, calls = _walk(route.dependant)
    statuses = {int(s) for s in route.responses if str(s).isdigit() and int(s) >= 400}
    if calls & markers.authentication:
        statuses |= {401, 403, 423}
    if params["query"] or params["path"] or params["header"] or params["body"]:
        statuses.add(422)
    if params["path"]:
        statuses.add(404)
    if params["body"]:
        statuses |= {400, 413}
    if calls & markers.database:
        statuses.add(503)
    return statuses


def _walk(dependant: Dependant) -> tuple[dict[str, list[Any]], set[Callable[..., Any]]]:
    """Every parameter of a route (by where it comes from) and every dependency it calls."""
    found: dict[str, list[Any]] = {"query": [], "path": [], "header": [], "body": []}
    calls: set[Callable[..., Any]] = set()
    stack = [dependant]
    while stack:
        d = stack.pop()
        found["query"] += d.query_params
        found["path"] += d.path_params
        found["header"] += d.header_params
        found["body"] += d.body_params
        if d.call is not None:
            calls.add(d.call)
        stack.extend(d.dependencies)
    return found, calls


def document_errors(schema: dict[str, Any], routes: list[Any], markers: Markers) -> None:
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    schemas["OperationOutcome"] = OUTCOME_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for route, operation in _operations(schema, routes):
        responses = operation.setdefault("responses", {})
        fhir = route.path_format.startswith(FHIR_PREFIX)
        statuses = statuses_for(route, markers)
        if fhir and 422 in statuses:  # FHIR answers bad input with 400
            responses.pop("422", None)
            statuses = (statuses - {422}) | {400}
        content = (
            {"application/fhir+json": {"schema": OUTCOME_REF}}
            if fhir
            else {"application/json": {"schema": ERROR_REF}}
        )
        for status in sorted(statuses):
            entry: dict[str, Any] = {
                "description": responses.get(str(status), {}).get("description") or HTTPStatus(status).phrase,
                "content": content,
            }
            if status in WITH_RETRY_AFTER:
                entry["headers"] = RETRY_AFTER
            responses[str(status)] = entry


def add_links(schema: dict[str, Any], links: tuple[Link, ...]) -> None:
    ids = {
        (method.upper(), path): op["operationId"]
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "operationId" in op
    }
    for link in links:
        if link.source not in ids or link.target not in ids:
            raise KeyError(f"OpenAPI link {link.name}: no operation {link.source} or {link.target}")
        method, path = link.source
        response = schema["paths"][path][method.lower()]["responses"].setdefault(link.status, {})
        response.setdefault("links", {})[link.name] = {
            "operationId": ids[link.target],
            "parameters": link.parameters,
        }
