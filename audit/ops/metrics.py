"""Prometheus metrics (``prometheus-client``) and the per-request observer.

Per request (`RequestObserver`, pure ASGI, outermost): a request id (the caller's ``X-Request-ID`` when
it is a short plain token, else a new one; echoed in the response), a count and a latency by method,
route *template* and status, and one access-log line. The labels come from a closed set (known
methods, the app's route templates or ``unmatched``, status codes), so no request can make new series
or put an id, a patient reference or a query string into a label.

At scrape time, from the database: the ledger head seq, seconds since the newest checkpoint, and
the denied and failed attempts in the ledger (counters that survive restarts and agree across
processes). From the elected signer: the status of its periodic incremental verification.

With several worker processes (``audit serve --workers N``) the counters and histograms live in
``PROMETHEUS_MULTIPROC_DIR`` (set by ``serve``), so any worker's scrape reports all of them.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audit.ops.logs import request_id

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
REQUEST_ID_HEADER = b"x-request-id"
_SAFE_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")

PROCESS = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "audit_http_requests", "HTTP requests by method, route template and status",
    ("method", "route", "status"), registry=PROCESS,
)  # fmt: skip
LATENCY = Histogram(
    "audit_http_request_duration_seconds", "HTTP request latency by method, route template and status",
    ("method", "route", "status"), registry=PROCESS,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)  # fmt: skip
# Set by every process at start (-1: not run yet); the signer sets 1 (ok) or 0 (problems) after each
# run, so the maximum over the live processes is the signer's answer.
VERIFICATION_OK = Gauge(
    "audit_verification_ok", "Latest periodic incremental verification: 1 ok, 0 problems, -1 not run yet",
    registry=PROCESS, multiprocess_mode="livemax",
)  # fmt: skip
VERIFICATION_AT = Gauge(
    "audit_verification_timestamp_seconds", "When the latest periodic verification finished (Unix time)",
    registry=PROCESS, multiprocess_mode="livemax",
)  # fmt: skip
SIGNER = Gauge(
    "audit_checkpoint_signer", "Processes that hold the checkpoint signer lease (should be 1)",
    registry=PROCESS, multiprocess_mode="livesum",
)  # fmt: skip
VERIFICATION_OK.set(-1)

access_log = logging.getLogger("audit.access")


class RequestObserver:
    """Request id, metrics and the access log for every HTTP request (pure ASGI: streaming works)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope) or uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        header = (REQUEST_ID_HEADER, rid.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            method = scope.get("method", "OTHER")
            method = method if method in METHODS else "OTHER"
            route = route_template(scope)
            code = str(status)
            REQUESTS.labels(method, route, code).inc()
            LATENCY.labels(method, route, code).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                _access(method, route, status, elapsed)
            request_id.reset(token)


def _access(method: str, route: str, status: int, elapsed: float) -> None:
    """One access-log record, made directly (no caller lookup: it is always this line)."""
    fields = {"method": method, "route": route, "status": status, "ms": round(elapsed * 1e3, 2)}
    record = access_log.makeRecord(
        access_log.name, logging.INFO, __file__, 0, "%s %s %s", (method, route, status), None, extra=fields
    )
    access_log.handle(record)


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return "unmatched"
    root = scope.get("root_path", "")
    return f"{root}{path}" if root and not path.startswith(root) else path


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER:
            return value.decode() if _SAFE_ID.fullmatch(value) else None
    return None


# --- exposition ----------------------------------------------------------------------------------


class _LedgerCollector:
    """Gauges and counters read from the database at scrape time (one short read-only transaction)."""

    def __init__(self, bind: Any) -> None:
        self.bind = bind

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("audit_database_up", "1 when the scrape could read the database")
        try:
            head, age, refused = _ledger_figures(self.bind)
        except Exception:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily(
            "audit_ledger_head_seq", "Seq of the newest ledger event (-1: empty)", value=head
        )
        if age is not None:
            yield GaugeMetricFamily(
                "audit_checkpoint_age_seconds", "Seconds since the newest signed checkpoint", value=age
            )
        denied = CounterMetricFamily("audit_denied_attempts", "Ledger events with outcome denied")
        denied.add_metric([], refused.get("denied", 0))
        failed = CounterMetricFamily("audit_failed_attempts", "Ledger events with outcome failed")
        failed.add_metric([], refused.get("failed", 0))
        yield denied
        yield failed


def _ledger_figures(bind: Any) -> tuple[int, float | None, dict[str, int]]:
    from sqlalchemy import func, select
    from sqlmodel import col

    from audit.config import get_settings
    from audit.db import read_scope
    from audit.ledger import service as ledger
    from audit.models import Checkpoint, utcnow

    table = ledger.LEDGER
    with read_scope(bind) as session:
        head, _ = ledger.head(session)
        newest = session.execute(
            select(func.max(Checkpoint.created_at)).where(col(Checkpoint.log_id) == get_settings().log_id)
        ).scalar_one_or_none()
        age = (utcnow() - newest).total_seconds() if newest is not None else None
        rows = session.execute(
            select(table.c.outcome, func.count())
            .where(table.c.outcome.in_(("denied", "failed")), table.c.log_id == get_settings().log_id)
            .group_by(table.c.outcome)
        ).all()
    return head, age, {str(outcome): int(n) for outcome, n in rows}


class _Scrape:
    def __init__(self, *collectors: Any) -> None:
        self.collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


def exposition(bind: Any = None) -> bytes:
    """The Prometheus text of this process (or of every worker, in multiprocess mode) plus the
    ledger figures."""
    folder = os.environ.get(MULTIPROC_ENV)
    if folder:
        from prometheus_client import multiprocess

        _forget_dead(Path(folder))
        registry = CollectorRegistry()
        collector: Any = multiprocess.MultiProcessCollector  # untyped in prometheus_client
        collector(registry, path=folder)
        source: Any = registry
    else:
        source = PROCESS
    return generate_latest(_Scrape(source, _LedgerCollector(bind)))


def _forget_dead(folder: Path) -> None:
    """Drop the live-mode gauge files of workers that died (a killed worker cannot clean up)."""
    from prometheus_client import multiprocess

    for path in folder.glob("gauge_live*_*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            mark_dead: Any = multiprocess.mark_process_dead  # untyped in prometheus_client
            mark_dead(int(pid), str(folder))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
