"""Sign-in, sign-out, the idle timeout, CSRF refusals and changing one's own password."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from audit.ledger.service import LEDGER
from audit.models import ApiToken
from tests.conftest import People
from tests.support import PASSWORD
from tests.web.conftest import Browser


def events(connection: Connection, type_: str) -> list[dict]:  # type: ignore[type-arg]
    rows = connection.execute(select(LEDGER.c.payload).where(LEDGER.c.type == type_)).all()
    return [json.loads(bytes(r[0])) for r in rows]


def test_a_page_redirects_to_sign_in_and_back(browser: Browser, people: People) -> None:
    coder = people.make("coder")
    first = browser.get("/coder/worklist?page=1", follow_redirects=False)
    assert (
        first.status_code == 303
        and first.headers["location"] == "/signin?next=%2Fcoder%2Fworklist%3Fpage%3D1"
    )
    page = browser.get(first.headers["location"])
    assert 'value="/coder/worklist?page=1"' in page.text
    browser.sign_in(coder)
    home = browser.get("/")
    assert home.status_code == 200 and coder.display_name in home.text and "/coder/worklist" in home.text


def test_the_session_cookie_is_httponly_secure_strict(browser: Browser, people: People) -> None:
    user = people.make("coder")
    response = browser.submit(
        "/signin", "/signin", {"username": user.username, "password": PASSWORD}, follow_redirects=False
    )
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and "audit_session" in v)
    lowered = cookie.lower()
    assert "httponly" in lowered and "secure" in lowered and "samesite=strict" in lowered


def test_a_wrong_password_shows_the_apis_answer_and_counts_toward_back_off(
    browser: Browser, people: People, connection: Connection
) -> None:
    user = people.make("coder")
    for _ in range(6):  # compliance.yaml: 5 free failures per account, then back-off
        wrong = browser.submit("/signin", "/signin", {"username": user.username, "password": "nope"})
        assert wrong.status_code == 401 and "incorrect username or password" in wrong.text
    waited = browser.submit("/signin", "/signin", {"username": user.username, "password": PASSWORD})
    assert waited.status_code == 429 and "Retry-After" in waited.headers
    assert "too many failed sign-ins" in waited.text and waited.headers["content-type"].startswith(
        "text/html"
    )


def test_sign_out_ends_the_session(browser: Browser, people: People, connection: Connection) -> None:
    browser.sign_in(people.make("provider"))
    assert browser.get("/", follow_redirects=False).status_code == 200
    out = browser.submit("/", "/signout", {}, follow_redirects=False)
    assert out.status_code == 303
    assert browser.get("/", follow_redirects=False).status_code == 303
    assert events(connection, "auth.signout")


def test_an_idle_session_ends(browser: Browser, people: People, connection: Connection) -> None:
    browser.sign_in(people.make("provider"))
    # The idle deadline is the token's expires_at: move it (and the session's start) into the past.
    row = connection.execute(select(ApiToken.expires_at, ApiToken.issued_at)).one()  # type: ignore[call-overload]
    moved = timedelta(minutes=16)
    connection.execute(update(ApiToken).values(expires_at=row[0] - moved, issued_at=row[1] - moved))
    ended = browser.get("/", follow_redirects=False)
    assert ended.status_code == 303 and ended.headers["location"].endswith("&ended=1")
    assert "Your session ended" in browser.get(ended.headers["location"]).text


def test_activity_moves_the_idle_deadline(browser: Browser, people: People, connection: Connection) -> None:
    browser.sign_in(people.make("provider"))
    before = connection.execute(select(ApiToken.expires_at)).scalar_one() - timedelta(minutes=10)  # type: ignore[call-overload]
    connection.execute(update(ApiToken).values(expires_at=before))
    assert browser.get("/", follow_redirects=False).status_code == 200
    after = connection.execute(select(ApiToken.expires_at)).scalar_one()  # type: ignore[call-overload]
    assert after > before + timedelta(minutes=9)


def test_an_api_token_is_not_a_session_cookie(browser: Browser, people: People) -> None:
    user = people.make("provider")
    token = people.headers(user)["Authorization"].removeprefix("Bearer ")
    browser.client.cookies.set("audit_session", f"{token}.{'0' * 32}", domain="testserver")
    assert browser.get("/", follow_redirects=False).status_code == 303
    browser.client.cookies.set("audit_session", token, domain="testserver")
    assert browser.get("/", follow_redirects=False).status_code == 303


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused_and_recorded(
    browser: Browser, people: People, connection: Connection
) -> None:
    user = people.make("provider")
    browser.sign_in(user)
    missing = browser.client.post("/signout", data={})
    wrong = browser.client.post("/signout", data={"csrf_token": "0" * 64})
    assert missing.status_code == 403 and wrong.status_code == 403
    assert "security token" in missing.text and missing.headers["content-type"].startswith("text/html")
    recorded = events(connection, "web.csrf")
    assert len(recorded) == 2 and all(e["outcome"] == "denied" for e in recorded)
    assert recorded[0]["actor"]["id"] == user.id
    assert browser.get("/", follow_redirects=False).status_code == 200  # still signed in
    anonymous = Browser(browser.client)
    browser.client.cookies.clear()
    refused = anonymous.client.post("/signin", data={"username": user.username, "password": PASSWORD})
    assert refused.status_code == 403
    # an anonymous caller cannot make the ledger grow by posting forms without a token
    for _ in range(3):
        assert anonymous.client.post("/account/password", data={}).status_code == 403
    assert len(events(connection, "web.csrf")) == 2


def test_change_own_password(browser_for, people: People, connection: Connection) -> None:  # type: ignore[no-untyped-def]
    user = people.make("coder")
    other = browser_for(user)
    me = browser_for(user)
    new = "a new long passphrase 42"
    differ = me.submit(
        "/account/password",
        "/account/password",
        {"current_password": PASSWORD, "new_password": new, "new_password_again": new + "x"},
    )
    assert differ.status_code == 422
    wrong = me.submit(
        "/account/password",
        "/account/password",
        {"current_password": "wrong", "new_password": new, "new_password_again": new},
    )
    assert wrong.status_code == 401 and "current password is wrong" in wrong.text
    short = me.submit(
        "/account/password",
        "/account/password",
        {"current_password": PASSWORD, "new_password": "short", "new_password_again": "short"},
    )
    assert short.status_code == 422
    done = me.submit(
        "/account/password",
        "/account/password",
        {"current_password": PASSWORD, "new_password": new, "new_password_again": new},
    )
    assert done.status_code == 200 and "was changed" in done.text
    assert me.get("/", follow_redirects=False).status_code == 200
    assert other.get("/", follow_redirects=False).status_code == 303  # other sessions ended
    changed = events(connection, "user.change_password")
    assert len(changed) == 1 and changed[0]["actor"]["id"] == user.id
    browser_for(None).sign_in(user, new)


def test_docs_are_served_locally_and_pages_reference_no_external_url(
    browser: Browser, people: People
) -> None:
    browser.sign_in(people.make("provider", "coder"))
    for path in (
        "/docs",
        "/redoc",
        "/",
        "/signin",
        "/account/password",
        "/static/app.css",
        "/static/app.js",
        "/static/swagger-init.js",
    ):
        response = browser.get(path)
        assert response.status_code == 200, path
        assert "http://" not in response.text and "https://" not in response.text, path
    assert browser.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
    assert browser.get("/static/redoc/redoc.standalone.js").status_code == 200
    assert browser.get("/static/redoc/logo-mini.svg").status_code == 200
    # The vendored bundles hold documentation links (licences, specs), but nothing they load at run
    # time may come from outside: no remote src, and Swagger UI's online validator badge is turned off.
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/static/redoc/redoc.standalone.js"):
        code = browser.get(asset).text
        assert not re.search(r"""src\s*[:=]\s*["']https?://""", code), asset
        assert not re.search(r"https?://(cdn|unpkg|fonts\.googleapis|cdnjs)", code), asset
    assert "validatorUrl: null" in browser.get("/static/swagger-init.js").text
    assert browser.get("/docs/assets/..%2F..%2Fsetup.py").status_code == 404


def test_unknown_page_is_an_html_404(browser: Browser) -> None:
    response = browser.get("/no/such/page")
    assert response.status_code == 404 and response.headers["content-type"].startswith("text/html")
