"""An open-loop, fixed-rate HTTP load generator (what wrk2 does; wrk2 is not packaged in Debian).

Request i is due at start + i / rate, whatever happened to earlier requests: each is its own asyncio
task, launched at its due time on a client with enough connections that a slow answer never holds
back the next send. Latency is measured from the DUE time, not the actual send time, so a server (or
generator) that falls behind shows up in the percentiles instead of being hidden by coordinated
omission. The sent-late count says how far the generator itself lagged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class FixedRateResult:
    rate: float
    sent: int
    ok: int
    errors: int
    sent_late: int  # requests the generator sent more than 5 ms after their due time
    latencies_ms: list[float]
    failures: dict[int | str, int]  # status code or exception name -> count

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1)]


async def _run(
    base: str, rate: float, seconds: float, request: Callable[[int], tuple[str, dict[str, object]]],
    headers: dict[str, str], ok_status: int,
) -> FixedRateResult:  # fmt: skip
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    latencies: list[float] = []
    counts = {"ok": 0, "errors": 0, "late": 0}
    statuses: dict[int | str, int] = {}
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as client:

        async def one(i: int, due: float) -> None:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.perf_counter() - due > 0.005:
                counts["late"] += 1
            path, body = request(i)
            try:
                response = await client.post(path, json=body)
                good = response.status_code == ok_status
                if not good:
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            except httpx.HTTPError as exc:
                good = False
                statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
            latencies.append((time.perf_counter() - due) * 1000)
            counts["ok" if good else "errors"] += 1

        total = int(rate * seconds)
        start = time.perf_counter() + 0.05
        tasks = [asyncio.create_task(one(i, start + i / rate)) for i in range(total)]
        await asyncio.gather(*tasks)
    return FixedRateResult(rate, total, counts["ok"], counts["errors"], counts["late"], latencies, statuses)


def fixed_rate(
    base: str, *, rate: float, seconds: float, request: Callable[[int], tuple[str, dict[str, object]]],
    headers: dict[str, str] | None = None, ok_status: int = 201,
) -> FixedRateResult:  # fmt: skip
    """POST `request(i)` (path, JSON body) at `rate` per second for `seconds`, open loop."""
    return asyncio.run(_run(base, rate, seconds, request, headers or {}, ok_status))
