"""Crash and concurrency tests against real servers (pytest -m crash; CI runs them on each database).

- `kill -9` of the server under concurrent writes: every acknowledged write is present with its
  event, and `audit verify` (chain, checkpoints and witness, columns, reconciliation) passes;
- two API processes on one PostgreSQL under load: one gapless chain; killing the checkpoint signer
  hands signing to the other;
- 16 concurrent If-Match updates of one line: exactly one wins per version;
- `audit import` killed midway, then re-run: the file is finished, with no duplicates.
Each prints acknowledged vs found for its engine.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import threading
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from audit.db import make_engine
from audit.migrate import upgrade
from tests.crash.servers import Server, engine_name, seed, start_server
from tests.support import IS_POSTGRES, run_cli

pytestmark = pytest.mark.crash
API = "/api/v1"
PROVIDER = "demo-provider-pass"  # the demo provider's password (tests.crash.servers.sign_in)


def _writer(base: str, token: str, encounters: list[str], acked: list[str], stop: threading.Event) -> None:
    """Add code lines until stopped; remember each line the server acknowledged (201)."""
    headers = {"Authorization": f"Bearer {token}"}
    body = {"system": "CPT", "code": "99213", "units": 1}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        i = 0
        while not stop.is_set():
            eid = encounters[i % len(encounters)]
            i += 1
            try:
                response = client.post(f"{API}/encounters/{eid}/codes", json=body)
            except httpx.HTTPError:
                return  # the server is gone
            if response.status_code == 201:
                acked.append(response.json()["id"])


def _load(servers: list[Server], token: str, encounters: list[str], threads: int) -> tuple[list[str], Any]:
    acked: list[str] = []
    stop = threading.Event()
    workers = [
        threading.Thread(
            target=_writer, args=(servers[i % len(servers)].base, token, encounters, acked, stop), daemon=True
        )
        for i in range(threads)
    ]
    for w in workers:
        w.start()

    def finish() -> None:
        stop.set()
        for w in workers:
            w.join(timeout=60)

    return acked, finish


def _present(url: str, line_ids: list[str]) -> tuple[int, int]:
    """(code lines found, code.add events found) among the acknowledged line ids."""
    engine = make_engine(url)
    found_lines = found_events = 0
    with engine.connect() as conn:
        for start in range(0, len(line_ids), 500):
            chunk = line_ids[start : start + 500]
            params = {f"i{n}": v for n, v in enumerate(chunk)}
            names = ", ".join(f":i{n}" for n in range(len(chunk)))
            found_lines += conn.execute(
                text(f"SELECT count(*) FROM code_line WHERE id IN ({names})"), params
            ).scalar_one()
            found_events += conn.execute(
                text(
                    "SELECT count(DISTINCT subject_id) FROM ledger_event WHERE type = 'code.add' "
                    f"AND outcome = 'allowed' AND subject_id IN ({names})"
                ),
                params,
            ).scalar_one()
    engine.dispose()
    return int(found_lines), int(found_events)


def _gapless(url: str) -> tuple[int, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        count, top = conn.execute(text("SELECT count(*), max(seq) FROM ledger_event")).one()
    engine.dispose()
    return int(count), int(top)


def _report(capsys: pytest.CaptureFixture[str], what: str, acked: int, found: int, events: int) -> None:
    with capsys.disabled():
        print(
            f"\n[crash] {engine_name()}: {what}: acknowledged {acked}, found {found} lines, {events} events"
        )


def _verify(url: str, tmp_path: Path) -> None:
    done = run_cli(["verify"], url, tmp_path)
    assert done.returncode == 0 and "OK (full)" in done.stdout, done.stdout + done.stderr


def test_kill9_under_concurrent_writes_loses_no_acknowledged_write(
    fresh_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    upgrade(fresh_db_url)
    server = start_server(fresh_db_url, tmp_path, port=9141)
    try:
        token, encounters = seed(server.base, count=6)
        acked, finish = _load([server], token, encounters, threads=12)
        time.sleep(3.0)
        server.kill9()  # mid-flight: some requests die with the process
        finish()
    finally:
        server.kill9()
    assert len(acked) > 20, "the load generator got writes through before the kill"
    lines, events = _present(fresh_db_url, acked)
    _report(capsys, "kill -9 under 12 writers", len(acked), lines, events)
    assert lines == len(acked) and events == len(acked)
    count, top = _gapless(fresh_db_url)
    assert count == top + 1
    restarted = start_server(fresh_db_url, tmp_path, port=9142)  # it comes back up on the same files
    try:
        assert httpx.get(f"{restarted.base}/readyz", timeout=10).status_code == 200
    finally:
        restarted.stop()
    _verify(fresh_db_url, tmp_path)


@pytest.mark.skipif(not IS_POSTGRES, reason="several API processes share PostgreSQL only")
def test_two_processes_one_gapless_chain_and_signer_takeover(
    fresh_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    upgrade(fresh_db_url)
    a = start_server(fresh_db_url, tmp_path, port=9143)
    b = start_server(fresh_db_url, tmp_path, port=9144)
    try:
        token, encounters = seed(a.base, count=8)
        acked, finish = _load([a, b], token, encounters, threads=12)
        time.sleep(3.0)
        signer = _signer_pid(fresh_db_url)
        assert signer in (a.pid, b.pid), "exactly one of the two processes holds the signer lease"
        victim, survivor = (a, b) if signer == a.pid else (b, a)
        before = _newest_checkpoint(fresh_db_url)
        victim.kill9()
        time.sleep(4.0)  # the survivor takes the lease at its next tick and signs what arrives
        finish()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _signer_pid(fresh_db_url) != survivor.pid:
            time.sleep(0.5)
        assert _signer_pid(fresh_db_url) == survivor.pid
        head = _gapless(fresh_db_url)[1]
        while time.monotonic() < deadline and _newest_checkpoint(fresh_db_url) < head + 1:
            time.sleep(0.5)
        assert _newest_checkpoint(fresh_db_url) == head + 1 > before
    finally:
        a.kill9()
        b.kill9()
    lines, events = _present(fresh_db_url, acked)
    _report(capsys, "2 processes, 12 writers, signer killed", len(acked), lines, events)
    assert lines == len(acked) and events == len(acked)
    count, top = _gapless(fresh_db_url)
    assert count == top + 1, "one chain, no gap, no fork"
    _verify(fresh_db_url, tmp_path)


def _signer_pid(url: str) -> int | None:
    engine = make_engine(url)
    with engine.connect() as conn:
        names = (
            conn.execute(
                text(
                    "SELECT a.application_name FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted "
                    "AND a.application_name LIKE 'audit-signer-%' "
                    "AND a.datname = current_database()"
                )
            )
            .scalars()
            .all()
        )
    engine.dispose()
    assert len(names) <= 1, f"more than one signer: {names}"
    return int(names[0].rsplit("-", 1)[1]) if names else None


def _newest_checkpoint(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        size = conn.execute(text("SELECT coalesce(max(tree_size), 0) FROM checkpoint")).scalar_one()
    engine.dispose()
    return int(size)


def test_sixteen_concurrent_if_match_updates_one_wins_per_version(
    fresh_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    upgrade(fresh_db_url)
    server = start_server(fresh_db_url, tmp_path, port=9145)
    outcomes: list[tuple[int, list[int]]] = []
    unexpected: list[str] = []
    try:
        token, encounters = seed(server.base, count=1)
        headers = {"Authorization": f"Bearer {token}"}
        line = httpx.post(
            f"{server.base}{API}/encounters/{encounters[0]}/codes",
            json={"system": "CPT", "code": "99213"}, headers=headers, timeout=30,
        ).json()  # fmt: skip
        url = f"{server.base}{API}/encounters/{encounters[0]}/codes/{line['id']}"
        for version in (1, 2, 3):
            barrier = threading.Barrier(16)
            statuses: list[int] = []

            def patch(
                n: int,
                version: int = version,
                barrier: threading.Barrier = barrier,
                statuses: list[int] = statuses,
            ) -> None:
                with httpx.Client(timeout=60) as client:
                    barrier.wait()
                    r = client.patch(
                        url,
                        json={"units": 100 * version + n, "reason": f"attempt {n}"},
                        headers={**headers, "If-Match": f'"{version}"'},
                    )
                    statuses.append(r.status_code)
                    if r.status_code not in (200, 412):
                        unexpected.append(f"{r.status_code} {r.headers.get('retry-after')} {r.text[:300]}")

            threads = [threading.Thread(target=patch, args=(n,)) for n in range(16)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            outcomes.append((version, sorted(statuses)))
        final = httpx.get(
            f"{server.base}{API}/encounters/{encounters[0]}", headers=headers, timeout=30
        ).json()
    finally:
        server.stop()
    with capsys.disabled():
        for version, statuses in outcomes:
            print(f"\n[crash] {engine_name()}: 16 x If-Match \"{version}\": {statuses.count(200)} won, "
                  f"{statuses.count(412)} got 412, {statuses.count(503)} got 503: {statuses}")  # fmt: skip
        for answer in unexpected:
            print(f"[crash] {engine_name()}: answer other than 200/412: {answer}")
    for _, statuses in outcomes:
        # Exactly one wins. Every other answer refuses and changes nothing: 412 (stale version), or
        # 503 with Retry-After when the server is saturated (16 requests at once); never a 5xx else.
        assert statuses.count(200) == 1, statuses
        assert all(s in (412, 503) for s in statuses if s != 200), statuses
    assert final["codes"][0]["version"] == 4
    _verify(fresh_db_url, tmp_path)


def test_import_killed_midway_then_rerun_finishes_without_duplicates(
    fresh_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    upgrade(fresh_db_url)
    assert run_cli(["demo"], fresh_db_url, tmp_path).returncode == 0
    feed = tmp_path / "feed.csv"
    rows = 6_000  # enough batches (2,000 rows each) to be killed between and inside them
    dos = date.today().replace(day=1).isoformat()
    with feed.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["external_id", "patient_ref", "date_of_service", "rendering_npi", "entered_by",
                      "system", "code", "modifiers", "units", "diagnosis_pointers", "line_ref"])  # fmt: skip
        for n in range(rows):
            out.writerow([f"FEED-{n // 4}", f"P-{n // 4}", dos, "1987654328", "coder.chen", "CPT", "99213",
                          "", "1", "", f"L-{n}"])  # fmt: skip
    env_args = ["import", str(feed)]
    first = subprocess.Popen(
        [*_cli(), *env_args], env=_env(fresh_db_url, tmp_path), cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and _imported(fresh_db_url) < rows // 10 and first.poll() is None:
        time.sleep(0.2)
    if first.poll() is None:
        first.send_signal(signal.SIGKILL)
    first.wait()
    midway = _imported(fresh_db_url)
    again = run_cli(env_args, fresh_db_url, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    total = _imported(fresh_db_url)
    with capsys.disabled():
        print(f"\n[crash] {engine_name()}: import of {rows} rows killed at {midway}, re-run: {total} lines")
    assert total == rows, "every row once: none lost, none twice"
    assert run_cli(env_args, fresh_db_url, tmp_path).returncode == 0 and _imported(fresh_db_url) == rows
    _verify(fresh_db_url, tmp_path)


def _imported(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.execute(
            text(
                "SELECT count(*) FROM code_line l JOIN encounter e ON e.id = l.encounter_id "
                "WHERE e.external_id LIKE 'FEED-%'"
            )
        ).scalar_one()
    engine.dispose()
    return int(n)


def _cli() -> list[str]:
    import sys

    return [sys.executable, "-m", "audit.cli"]


def _env(url: str, tmp_path: Path) -> dict[str, str]:
    import os

    return {**os.environ, "AUDIT_DATABASE_URL": url, "AUDIT_SIGNING_KEY_FILE": str(tmp_path / "cli.key")}


def test_concurrent_writers_of_several_provider_days_keep_the_rollups_exact(
    fresh_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Writers refresh a provider-day's roll-ups before the log's lock, one writer per key at a time
    (audit.ledger.rollups.prepare). Under 12 concurrent writers over four dates of service, with codes,
    attestations and changes after them (recounted under the log's lock), on two processes on
    PostgreSQL, every roll-up row still equals the GROUP BY: `audit verify` reconciles them."""
    from audit.demo import last_demo_day

    upgrade(fresh_db_url)
    server = start_server(fresh_db_url, tmp_path, port=9147, workers=2 if IS_POSTGRES else 1)
    answers: list[int] = []
    try:
        token, _ = seed(server.base, count=0)
        headers = {"Authorization": f"Bearer {token}"}
        me = httpx.get(f"{server.base}{API}/users/me", headers=headers, timeout=30).json()
        last = last_demo_day(date.today())
        days = [date.fromordinal(last.toordinal() - n).isoformat() for n in range(4)]

        def encounter(n: int) -> str:
            body = {"external_id": f"ROLL-{n}-{uuid.uuid4().hex[:12]}", "patient_ref": "P-roll",
                    "date_of_service": days[n % 4], "rendering_provider_id": me["id"]}  # fmt: skip
            made = httpx.post(f"{server.base}{API}/encounters", json=body, headers=headers, timeout=60)
            answers.append(made.status_code)
            return str(made.json()["id"])

        def work(n: int) -> None:
            with httpx.Client(base_url=server.base, headers=headers, timeout=120) as client:
                for round_ in range(3):
                    eid = encounter(4 * n + round_)
                    codes = f"{API}/encounters/{eid}/codes"
                    for code in ("99213", "36415"):
                        answers.append(client.post(codes, json={"system": "CPT", "code": code}).status_code)
                    signed = client.post(f"{API}/encounters/{eid}/attestations", json={"password": PROVIDER})
                    answers.append(signed.status_code)
                    after = {"system": "CPT", "code": "99214", "reason": "documentation reviewed"}
                    answers.append(client.post(codes, json=after).status_code)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    finally:
        server.stop()
    with capsys.disabled():
        print(f"\n[crash] {engine_name()}: 12 writers over 4 provider-days: {len(answers)} answers, "
              f"{answers.count(201)} created, {answers.count(503)} busy (503)")  # fmt: skip
    assert all(a in (201, 503) for a in answers), sorted(set(answers))
    assert answers.count(201) >= len(answers) * 0.9
    _verify(fresh_db_url, tmp_path)


def _established_per_process(parent: int, port: int) -> dict[int, int]:
    """Established server-side connections on `port`, per child process of `parent` (from /proc)."""
    established: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                established.add(fields[9])
    counts: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) != parent:
                continue
            links = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except OSError:
            continue  # a process that ended meanwhile
        sockets = [link[8:-1] for link in links if link.startswith("socket:[")]
        counts[int(entry.name)] = sum(inode in established for inode in sockets)
    return counts


@pytest.mark.skipif(not IS_POSTGRES, reason="--workers above 1 needs PostgreSQL")
def test_two_workers_share_keep_alive_connections(fresh_db_url: str, tmp_path: Path) -> None:
    """Each worker accepts on its own SO_REUSEPORT socket (audit.ops.workers), so 32 clients that keep
    their connections open are spread over both workers. On one shared socket the split was left to
    chance: 16/0 was measured, one worker idle."""
    upgrade(fresh_db_url)
    port = 9148
    server = start_server(fresh_db_url, tmp_path, port=port, workers=2, demo=False)
    clients = [httpx.Client(base_url=server.base, timeout=30) for _ in range(32)]
    try:
        for client in clients:
            assert client.get("/healthz").status_code == 200  # the connection stays open
        per_worker = [n for n in _established_per_process(server.pid, port).values() if n]
    finally:
        for client in clients:
            client.close()
        server.stop()
    assert sum(per_worker) == 32 and len(per_worker) == 2, per_worker
    assert min(per_worker) >= 6, per_worker  # a fair coin gives 5 or fewer of 32 once in 5,000 runs


def test_a_burst_past_capacity_waits_its_turn_instead_of_stalling(
    fresh_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """96 writes at once on one process. Each step of a sync route takes one of 40 threads, and a
    request keeps one of 15 pooled connections from its first statement to its commit: without a limit,
    threads waiting for a connection held every thread the connection holders needed to finish, until
    the pool's 30 s timeout, and requests failed with 503. audit.deps.request_gate lets 2 in at a time."""
    upgrade(fresh_db_url)
    server = start_server(fresh_db_url, tmp_path, port=9149)
    statuses: list[int] = []
    try:
        token, encounters = seed(server.base, count=16)
        barrier = threading.Barrier(96)

        def post(n: int) -> None:
            url = f"{server.base}{API}/encounters/{encounters[n % 16]}/codes"
            barrier.wait()
            r = httpx.post(url, json={"system": "CPT", "code": "99213"}, timeout=120,
                           headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            statuses.append(r.status_code)

        threads = [threading.Thread(target=post, args=(n,)) for n in range(96)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=180)
        took = time.monotonic() - started
    finally:
        server.stop()
    with capsys.disabled():
        print(f"\n[crash] {engine_name()}: 96 writes at once: {statuses.count(201)} created in {took:.1f} s")
    assert sorted(set(statuses)) == [201], statuses
    assert took < 25, f"{took:.1f} s: a request waited for the pool's 30 s timeout"
    _verify(fresh_db_url, tmp_path)
