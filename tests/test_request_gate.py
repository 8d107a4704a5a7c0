"""The request gate (audit.deps.request_gate): two lanes, so that reports, exports and imports never
take the places code entry and sign-off need, and the settings that size them."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.requests import Request

from audit import deps
from audit.config import POOL_CONNECTIONS, Settings
from audit.main import create_app


def _templates() -> set[str]:
    """Every route template of the app, the web pages' included (routers nest)."""

    def walk(routes: Any) -> Any:
        for route in routes:
            if hasattr(route, "original_router"):
                yield from walk(route.original_router.routes)
            elif isinstance(getattr(route, "path", None), str):
                yield route.path

    return set(walk(create_app().router.routes))


def _request(path: str) -> Request:
    route = APIRoute(path, endpoint=lambda: None)
    return Request({"type": "http", "method": "GET", "path": path, "headers": [], "route": route})


def test_every_long_running_prefix_names_a_route_and_code_entry_is_interactive() -> None:
    templates = _templates()
    for entry in deps.LONG_RUNNING:
        named = any(t.startswith(entry) for t in templates) if entry.endswith("/") else entry in templates
        assert named, f"{entry} names no route"
    assert deps.lane(_request("/compliance")) == deps.LONG  # the dashboard
    assert deps.lane(_request("/compliance/encounters/{encounter_id}/flags")) == deps.INTERACTIVE
    assert deps.lane(_request("/fhir/AuditEvent/{seq}")) == deps.INTERACTIVE  # one event by its seq
    assert deps.lane(_request("/api/v1/reports/{name}")) == deps.LONG
    assert deps.lane(_request("/api/v1/imports")) == deps.LONG
    assert deps.lane(_request("/api/v1/audit/verify")) == deps.LONG
    interactive_routes = (
        "/api/v1/encounters/{encounter_id}/codes", "/api/v1/encounters/{encounter_id}/attestations",
        "/healthz", "/encounters/{encounter_id}/lines",
    )  # fmt: skip
    for interactive in interactive_routes:
        assert deps.lane(_request(interactive)) == deps.INTERACTIVE, interactive


def test_a_request_with_no_route_is_interactive() -> None:
    unmatched = Request({"type": "http", "method": "GET", "path": "/api/v1/reports/x", "headers": []})
    assert deps.lane(unmatched) == deps.INTERACTIVE  # the lane follows the template, never the raw path


@asynccontextmanager
async def _through_gate(path: str) -> Any:
    gate = deps.request_gate(_request(path))
    await gate.__anext__()
    try:
        yield
    finally:
        await gate.aclose()


def test_long_requests_do_not_take_the_interactive_places(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_MAX_CONCURRENT_REQUESTS", "2")
    monkeypatch.setenv("AUDIT_MAX_CONCURRENT_LONG_REQUESTS", "1")
    from audit.config import get_settings

    get_settings.cache_clear()

    async def scenario() -> list[str]:
        order: list[str] = []
        release = asyncio.Event()

        async def hold(name: str, path: str) -> None:
            async with _through_gate(path):
                order.append(f"in {name}")
                await release.wait()
            order.append(f"out {name}")

        long_one = asyncio.create_task(hold("report-1", "/api/v1/reports/{name}"))
        long_two = asyncio.create_task(hold("report-2", "/api/v1/reports/{name}"))
        await asyncio.sleep(0.01)
        codes = [
            asyncio.create_task(hold(f"code-{i}", "/api/v1/encounters/{encounter_id}/codes"))
            for i in (1, 2, 3)
        ]
        await asyncio.sleep(0.01)
        snapshot = list(order)
        release.set()
        await asyncio.gather(long_one, long_two, *codes)
        return snapshot

    try:
        snapshot = asyncio.run(scenario())
    finally:
        get_settings.cache_clear()
    # one report in its lane (the second waits), two code entries in theirs (the third waits)
    assert snapshot == ["in report-1", "in code-1", "in code-2"]


@pytest.mark.parametrize(("interactive", "long"), [(10, 6), (14, 2), (0, 4), (4, 0)])
def test_the_lanes_cannot_outgrow_the_pool(interactive: int, long: int) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(max_concurrent_requests=interactive, max_concurrent_long_requests=long)
    assert "max_concurrent" in str(refused.value).lower() or "greater than 0" in str(refused.value)
    assert (
        Settings(max_concurrent_requests=11, max_concurrent_long_requests=4).max_concurrent_requests + 4
        == POOL_CONNECTIONS
    )
