"""Sign-in abuse: back-off instead of lockout, no password or username oracle, open sessions
untouched, bounded evidence (one event per burst plus a summary with the count)."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Connection

from audit.db import make_engine
from audit.deps import get_bind
from audit.errors import NotAuthenticated, TooManyAttempts
from audit.ledger.service import LEDGER
from audit.main import create_app
from audit.migrate import upgrade
from audit.models import utcnow
from audit.policy.compliance import BackoffRule
from audit.policy.runtime import get_compliance
from audit.user import backoff, signin, signin_events
from audit.user.backoff import delay_seconds, wait_seconds
from audit.user.models import SigninBackoff
from tests.conftest import People
from tests.support import PASSWORD

TOKEN = "/api/v1/auth/token"


def signin_events_of(connection: Connection) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(LEDGER.c.payload).where(LEDGER.c.type == "auth.signin").order_by(LEDGER.c.seq)
    ).all()
    return [json.loads(bytes(r[0])) for r in rows]


def attempt(client: TestClient, username: str, password: str) -> Any:
    return client.post(TOKEN, data={"username": username, "password": password})


def fail_until_backoff(client: TestClient, username: str) -> int:
    free = get_compliance().signin.account.free_failures
    for _ in range(free + 1):  # the last one is checked, and starts the wait
        assert attempt(client, username, "wrong password!").status_code == 401
    return free + 1


def test_delay_doubles_after_the_free_failures_and_is_capped() -> None:
    rule = BackoffRule(free_failures=3, max_delay_seconds=60)
    assert [delay_seconds(n, rule, base=1) for n in range(0, 11)] == [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 60]
    assert delay_seconds(10**6, rule, base=1) == 60


def test_no_wait_within_the_free_failures_even_if_a_parallel_attempt_stamped_later() -> None:
    policy = get_compliance().signin
    now = utcnow()
    later = SigninBackoff(key="k", kind="account", failures=policy.account.free_failures, last_failure_at=now)
    assert wait_seconds(later, policy.account, policy, now - timedelta(seconds=1)) == 0
    over = SigninBackoff(
        key="k", kind="account", failures=policy.account.free_failures + 2, last_failure_at=now
    )
    assert wait_seconds(over, policy.account, policy, now) == 2 * policy.base_delay_seconds


def test_during_backoff_right_and_wrong_passwords_get_the_same_429(
    client: TestClient, people: People
) -> None:
    user = people.make("coder")
    fail_until_backoff(client, user.username)
    wrong = attempt(client, user.username, "wrong password!")
    right = attempt(client, user.username, PASSWORD)
    assert wrong.status_code == right.status_code == 429
    assert wrong.json()["error"] == right.json()["error"] == "TooManyAttempts"
    assert wrong.json()["field"] == "username"
    assert int(wrong.headers["Retry-After"]) >= 1 and int(right.headers["Retry-After"]) >= 1
    assert wrong.json().keys() == right.json().keys()


def test_unknown_usernames_back_off_exactly_like_real_ones(client: TestClient, people: People) -> None:
    """Same answers, in the same order, for a real account and a name that does not exist."""
    real = people.make("coder").username
    answers = {name: [attempt(client, name, "wrong password!").status_code for _ in range(8)]
               for name in (real, "no.such.person")}  # fmt: skip
    assert answers[real] == answers["no.such.person"]
    assert 429 in answers[real]


def test_failed_sign_ins_never_end_an_open_session(client: TestClient, people: People) -> None:
    victim = people.make("provider")
    headers = people.headers(victim)
    for _ in range(30):
        attempt(client, victim.username, "attacker guess")
    assert client.get("/api/v1/users/me", headers=headers).status_code == 200
    assert client.get("/api/v1/encounters", headers=headers).status_code == 200


def test_a_correct_password_starts_the_account_count_again(client: TestClient, people: People) -> None:
    user = people.make("coder")
    free = get_compliance().signin.account.free_failures
    for _ in range(free):
        assert attempt(client, user.username, "wrong password!").status_code == 401
    assert attempt(client, user.username, PASSWORD).status_code == 200
    for _ in range(free):
        assert attempt(client, user.username, "wrong password!").status_code == 401


def test_one_address_spraying_many_usernames_backs_off(client: TestClient) -> None:
    rule = get_compliance().signin.address
    codes = [
        attempt(client, f"spray{i}", "wrong password!").status_code for i in range(rule.free_failures + 3)
    ]
    assert codes[: rule.free_failures + 1] == [401] * (rule.free_failures + 1)
    assert codes[-1] == 429


def test_backoff_rows_hold_no_address_or_username(client: TestClient, connection: Connection) -> None:
    attempt(client, "someone.secret", "wrong password!")
    keys = [row.key for row in connection.execute(select(SigninBackoff.__table__)).all()]  # type: ignore[attr-defined]
    assert len(keys) == 2 and all(len(k) == 64 for k in keys)
    assert not any("someone" in k or "testclient" in k for k in keys)


def test_a_burst_is_one_event_then_one_summary_with_the_count(
    client: TestClient, people: People, connection: Connection, uow: Any
) -> None:
    user = people.make("coder")
    checked = fail_until_backoff(client, user.username)
    for _ in range(3):
        assert attempt(client, user.username, PASSWORD).status_code == 429
    failed = [e for e in signin_events_of(connection) if e["outcome"] == "failed"]
    assert len(failed) == 1  # the first failure of the window; the rest are counted
    first = failed[0]
    assert first["actor"]["id"] == user.id and first["detail"]["username"] == user.username
    assert first["reason"] == "wrong password" and len(first["detail"]["source"]) == 16
    later = utcnow() + timedelta(seconds=get_compliance().signin.report_window_seconds + 1)
    with uow() as session:
        assert signin_events.sweep(session, later) == 1
    summary = [e for e in signin_events_of(connection) if e["outcome"] == "failed"][-1]
    assert summary["detail"]["summary"] is True and summary["detail"]["since_seq"] == first["seq"]
    assert summary["detail"]["failed"] == checked - 1 and summary["detail"]["throttled"] == 3
    assert summary["detail"]["attempts"] == checked - 1 + 3 and summary["subject"]["id"] == user.id


def test_the_next_attempt_after_the_window_reports_the_closed_burst(
    people: People, connection: Connection, uow: Any
) -> None:
    user = people.make("coder")
    t0 = utcnow()
    for i in range(3):
        with uow() as session:
            tried = signin.admit(
                session, username=user.username, address="198.51.100.7", now=t0 + timedelta(seconds=i)
            )
        with pytest.raises(NotAuthenticated), uow() as session:
            signin.conclude(session, attempt=tried, password_ok=False)
    after = t0 + timedelta(seconds=get_compliance().signin.report_window_seconds + 5)
    with uow() as session:
        signin.admit(session, username="anyone.else", address="203.0.113.9", now=after)
    failed = [e for e in signin_events_of(connection) if e["outcome"] == "failed"]
    assert [e["detail"].get("attempts") for e in failed] == [None, 2]


def test_huge_usernames_are_refused_and_unknown_ones_stored_cut(
    client: TestClient, connection: Connection
) -> None:
    huge = attempt(client, "x" * 1_000_000, "whatever")
    assert huge.status_code in (413, 422)
    assert attempt(client, "y" * 151, "whatever").json()["field"] == "username"
    assert attempt(client, "z" * 150, "whatever").status_code == 401
    (event,) = [e for e in signin_events_of(connection) if e["detail"].get("username", "").startswith("z")]
    assert event["detail"]["username"] == "z" * 64 and event["detail"]["username_length"] == 150
    assert event["actor"]["id"] is None
    nul = attempt(client, "ad\x00min", "whatever")
    assert nul.status_code == 422 and nul.json()["field"] == "username"


def test_the_token_form_refuses_control_characters_in_the_password(client: TestClient) -> None:
    response = attempt(client, "someone", "pass\x07word")
    assert response.status_code == 422 and response.json()["field"] == "password"


def parallel(fresh_db_url: str, tries: list[tuple[str, str]]) -> dict[tuple[str, str], list[int]]:
    """Send the (username, password) tries at once on a real database; statuses per try."""
    upgrade(fresh_db_url)
    engine = make_engine(fresh_db_url)
    app = create_app()
    app.dependency_overrides[get_bind] = lambda: engine
    with engine.connect() as conn:
        made = People(conn, None)  # type: ignore[arg-type]
        names = {"victim": made.make("coder").username, "owner": made.make("provider").username}
    codes: dict[tuple[str, str], list[int]] = {t: [] for t in tries}
    errors: list[Exception] = []
    with TestClient(app) as client:

        def send(who: str, password: str) -> None:
            try:
                status = attempt(client, names.get(who, who), password).status_code
            except Exception as exc:  # a server error raised through the test client
                status = 0
                errors.append(exc)
            codes[(who, password)].append(status)

        threads = [threading.Thread(target=send, args=t) for t in tries]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    engine.dispose()
    assert not errors, errors
    return codes


def test_parallel_guesses_cannot_outrun_the_counter(fresh_db_url: str) -> None:
    """Each attempt is counted before its password is checked, under a row lock: 24 parallel guesses
    get at most a few password checks (401), the rest wait (429)."""
    (codes,) = parallel(fresh_db_url, [("victim", "wrong password!")] * 24).values()
    free = get_compliance().signin.account.free_failures
    assert set(codes) <= {401, 429} and len(codes) == 24
    assert free + 1 <= codes.count(401) <= free + 3, codes


def test_parallel_mixed_sign_ins_never_fail_or_deadlock(fresh_db_url: str) -> None:
    """Right and wrong passwords, known and unknown names, at once: only 200, 401 and 429."""
    tries = [("victim", "wrong password!")] * 8 + [("owner", PASSWORD)] * 4 + [("ghost", "nope nope")] * 8
    codes = parallel(fresh_db_url, tries)
    assert {c for statuses in codes.values() for c in statuses} <= {200, 401, 429}, codes
    assert 200 in codes[("owner", PASSWORD)]


def test_admit_refuses_during_backoff_without_counting(people: People, uow: Any) -> None:
    user = people.make("coder")
    now = utcnow()
    free = get_compliance().signin.account.free_failures
    for _ in range(free + 1):
        with uow() as session:
            signin.admit(session, username=user.username, address="192.0.2.1", now=now)
    with pytest.raises(TooManyAttempts) as refused, uow() as session:
        signin.admit(session, username=user.username, address="192.0.2.1", now=now)
    assert refused.value.retry_after == 1
    with uow() as session:
        rows = session.scalars(select(SigninBackoff)).all()
        assert sorted(r.failures for r in rows) == [free + 1, free + 1]


def test_forgotten_keys_are_pruned_and_count_from_zero(client: TestClient, uow: Any) -> None:
    attempt(client, "someone.old", "wrong password!")
    policy = get_compliance().signin
    later = utcnow() + timedelta(minutes=policy.forget_after_minutes, seconds=1)
    with uow() as session:
        assert backoff.prune(session, policy, utcnow()) == 0
        assert backoff.prune(session, policy, later) == 2  # its username and its address
        assert session.scalars(select(SigninBackoff)).all() == []
