"""Fuzz the real service with schemathesis, as provider, coder, compliance and auditor (CI step).

Starts `audit serve --demo` on a fresh database (a SQLite file by default, or FUZZ_DATABASE_URL, a
PostgreSQL database that the run empties first),
signs the four demo roles in, opens an engagement for the auditor, fills the OpenAPI document's
examples with the demo's real ids (so generated requests reach past "unknown provider"), and runs
`schemathesis run` once per role with every phase (examples, coverage, fuzzing, stateful through the
document's links), a fixed seed and a bounded number of examples. Fails on any 5xx, any response
that breaks its documented schema, status or headers, or any invalid request that is accepted.

    python tests/fuzz/schemathesis_ci.py [--port 8470] [--max-examples 25] [--seed 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROLES = {  # role -> demo username (passwords: audit.demo.DEMO_PASSWORDS)
    "provider": "dr.okafor",
    "coder": "coder.chen",
    "compliance": "compliance.brooks",
    "auditor": "auditor.kim",
}
CONFIG = Path(__file__).with_name("schemathesis.toml")  # which checks, and where they do not apply
# Signing out would revoke the token the rest of the run uses.
EXCLUDED_PATHS = ["/api/v1/auth/signout"]


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    work = Path(tempfile.mkdtemp(prefix="audit-fuzz-"))
    db_url = os.environ.get("FUZZ_DATABASE_URL") or f"sqlite:///{work / 'fuzz.db'}"
    _empty(db_url)
    env = {
        **os.environ,
        "AUDIT_DATABASE_URL": db_url,
        "AUDIT_ENV": "development",
        "AUDIT_SIGNING_KEY_FILE": str(work / "signing.key"),
    }
    base = f"http://127.0.0.1:{args.port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "audit.cli", "serve", "--demo", "--port", str(args.port)],
        env=env,
        cwd=work,
        stdout=(work / "server.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    started = time.monotonic()
    try:
        _wait_for(f"{base}/openapi.json", server)
        tokens = {role: _sign_in(base, user, role) for role, user in ROLES.items()}
        ids = _demo_ids(base, tokens)
        _prepare(base, tokens, ids)
        schema_file = work / "openapi.json"
        schema_file.write_text(json.dumps(with_examples(_get_json(f"{base}/openapi.json"), ids)))
        failed = [role for role in ROLES if not _run(role, tokens[role], schema_file, base, work, args)]
    finally:
        server.terminate()
        server.wait(timeout=30)
    log = (work / "server.log").read_text()
    if "Traceback" in log:
        print(log[-6000:])
        failed.append("server log has a traceback")
    total = time.monotonic() - started
    verdict = "FAILED: " + ", ".join(failed) if failed else "OK"
    print(f"schemathesis: {len(ROLES)} roles in {total:.0f} s: {verdict}")
    return 1 if failed else 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=8470)
    parser.add_argument("--max-examples", type=int, default=25)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--max-time", type=int, default=45, help="seconds per role")
    return parser.parse_args(argv)


def _run(role: str, token: str, schema: Path, base: str, work: Path, args: argparse.Namespace) -> bool:
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(CONFIG),
        "run", str(schema), "--url", base, "-H", f"Authorization: Bearer {token}",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", str(args.max_examples), "--seed", str(args.seed), "--max-time", str(args.max_time),
        "--workers", "1", "--no-shrink", "--request-timeout", "30", "--suppress-health-check", "all",
        "--report", "junit", "--report-junit-path", str(work / f"junit-{role}.xml"),
        *[arg for path in EXCLUDED_PATHS for arg in ("--exclude-path", path)],
    ]  # fmt: skip
    print(f"== schemathesis as {role}", flush=True)
    started = time.monotonic()
    result = subprocess.run(command, cwd=work, check=False)
    print(f"== {role}: exit {result.returncode} in {time.monotonic() - started:.0f} s", flush=True)
    return result.returncode == 0


# --- the demo organisation --------------------------------------------------------------------


def _wait_for(url: str, server: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.5)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def _request(
    url: str, *, token: str | None = None, data: bytes | None = None, content_type: str = "application/json"
) -> Any:
    headers = {"Content-Type": content_type} if data is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with urllib.request.urlopen(
        urllib.request.Request(url, data=data, headers=headers), timeout=30
    ) as response:
        return json.loads(response.read())


def _get_json(url: str, token: str | None = None) -> Any:
    return _request(url, token=token)


def _sign_in(base: str, username: str, role: str) -> str:
    from audit.demo import DEMO_PASSWORDS

    form = urllib.parse.urlencode({"username": username, "password": DEMO_PASSWORDS[role]}).encode()
    body = _request(f"{base}/api/v1/auth/token", data=form, content_type="application/x-www-form-urlencoded")
    return str(body["access_token"])


def _demo_ids(base: str, tokens: dict[str, str]) -> dict[str, str]:
    me = {role: _get_json(f"{base}/api/v1/users/me", token) for role, token in tokens.items()}
    page = _get_json(f"{base}/api/v1/encounters?limit=50", tokens["coder"])
    mine = [e for e in page["items"] if e["rendering_provider_id"] == me["provider"]["id"] and e["codes"]]
    encounter = mine[0] if mine else page["items"][0]
    line = encounter["codes"][0] if encounter["codes"] else {"id": "none", "version": 1}
    return {
        "provider_id": me["provider"]["id"],
        "coder_id": me["coder"]["id"],
        "auditor_id": me["auditor"]["id"],
        "encounter_id": encounter["id"],
        "line_id": line["id"],
        "version": str(line["version"]),
        "date_of_service": encounter["date_of_service"],
    }


def _prepare(base: str, tokens: dict[str, str], ids: dict[str, str]) -> None:
    """The auditor's engagement, plus a spare delegation and a spare engagement whose ids are the
    examples of the revoke operations (so revoking them leaves the roles' own access in place)."""
    today = datetime.now(UTC).date()
    scope = {
        "auditor_id": ids["auditor_id"],
        "date_from": (today - timedelta(days=400)).isoformat(),
        "date_to": today.isoformat(),
        "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        "purpose": "schemathesis run",
    }
    _post(base, "engagements", tokens["compliance"], scope)
    ids["engagement_id"] = _post(base, "engagements", tokens["compliance"], {**scope, "purpose": "spare"})[
        "id"
    ]
    spare = {"coder_id": ids["coder_id"], "code_systems": ["HCPCS"],
             "valid_until": (datetime.now(UTC) + timedelta(days=30)).isoformat()}  # fmt: skip
    ids["delegation_id"] = _post(base, "delegations", tokens["provider"], spare)["id"]


def _post(base: str, path: str, token: str, body: dict[str, Any]) -> Any:
    return _request(f"{base}/api/v1/{path}", token=token, data=json.dumps(body).encode())


def _empty(db_url: str) -> None:
    """Start from nothing: FUZZ_DATABASE_URL names a PostgreSQL database this run may wipe."""
    if not db_url.startswith("postgresql"):
        return
    from sqlalchemy import text

    from audit.db import make_engine

    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


# --- examples with real ids -------------------------------------------------------------------

PARAMETER_EXAMPLES = {
    "encounter_id": "encounter_id", "line_id": "line_id", "delegation_id": "delegation_id",
    "engagement_id": "engagement_id", "provider_id": "provider_id", "coder_id": "coder_id",
}  # fmt: skip


def with_examples(schema: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """The document with the demo's ids as examples of every id parameter and id field, so the
    examples phase and the fuzzer's seeds reach real rows (the live document is not changed)."""
    for item in schema["paths"].values():
        for op in item.values():
            for param in op.get("parameters", []):
                key = PARAMETER_EXAMPLES.get(param["name"])
                if key:
                    param["example"] = ids[key]
                if param["name"] == "If-Match":
                    param["example"] = f'"{ids["version"]}"'
    for model in schema.get("components", {}).get("schemas", {}).values():
        for name, prop in model.get("properties", {}).items():
            value = _example_for(name, ids)
            if value is not None:
                prop["examples"] = [value]
    return schema


def _example_for(name: str, ids: dict[str, str]) -> Any:
    from audit.demo import DEMO_PASSWORDS

    dos = ids["date_of_service"]
    until = (datetime.now(UTC) + timedelta(days=60)).isoformat()
    return {
        "rendering_provider_id": ids["provider_id"], "coder_id": ids["coder_id"],
        "auditor_id": ids["auditor_id"], "provider_id": ids["provider_id"],
        "provider_ids": [ids["provider_id"]], "date_of_service": dos, "date_from": dos, "date_to": dos,
        "from": dos, "to": dos, "valid_until": until, "expires_at": until,
        "dos_from": dos, "dos_until": str(date.fromisoformat(dos) + timedelta(days=30)),
        "username": ROLES["provider"], "password": DEMO_PASSWORDS["provider"],
    }.get(name)  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
