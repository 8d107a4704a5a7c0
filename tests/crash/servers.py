"""Real `audit serve` processes for the crash tests: start, wait until ready, kill -9, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx

from tests.support import IS_POSTGRES

API = "/api/v1"


def engine_name() -> str:
    return "PostgreSQL" if IS_POSTGRES else "SQLite"


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill9(self) -> None:
        """SIGKILL to the server's whole process group (its workers too): no clean-up runs."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill9()


def server_env(url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "AUDIT_DATABASE_URL": url,
        "AUDIT_SIGNING_KEY_FILE": str(tmp_path / "cli.key"),  # the key `run_cli` verifies with
        "AUDIT_CHECKPOINT_TIMER": "true",
        "AUDIT_CHECKPOINT_INTERVAL": "1",
        "AUDIT_ENV": "test",
        **extra,
    }


def start_server(url: str, tmp_path: Path, *, port: int, workers: int = 1, demo: bool = True) -> Server:
    log = tmp_path / f"serve-{port}-{uuid.uuid4().hex[:6]}.log"
    args = [sys.executable, "-m", "audit.cli", "serve", "--port", str(port), "--workers", str(workers)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*args, *(["--demo"] if demo else [])], env=server_env(url, tmp_path), cwd=tmp_path,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{server.base}/readyz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.kill9()
    raise RuntimeError(f"the server did not become ready: {log.read_text()[-3000:]}")


def sign_in(base: str, username: str = "dr.okafor", password: str = "demo-provider-pass") -> str:
    response = httpx.post(
        f"{base}{API}/auth/token", data={"username": username, "password": password}, timeout=30
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def seed(base: str, count: int) -> tuple[str, list[str]]:
    """A provider's token and `count` new open encounters of theirs (the demo provider)."""
    from audit.demo import last_demo_day

    token = sign_in(base)
    headers = {"Authorization": f"Bearer {token}"}
    me = httpx.get(f"{base}{API}/users/me", headers=headers, timeout=30).json()
    dos = last_demo_day(date.today()).isoformat()
    encounters = []
    for _ in range(count):
        body = {"external_id": f"CRASH-{uuid.uuid4().hex[:12]}", "patient_ref": "P-crash",
                "date_of_service": dos, "rendering_provider_id": me["id"]}  # fmt: skip
        made = httpx.post(f"{base}{API}/encounters", json=body, headers=headers, timeout=30)
        made.raise_for_status()
        encounters.append(made.json()["id"])
    return token, encounters
