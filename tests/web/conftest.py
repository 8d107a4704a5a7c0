"""Web page tests: a TestClient on https (the session cookie is Secure outside development) signed
in through the real sign-in page, with the CSRF token read from the page as a browser would."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Connection

from audit.deps import get_bind
from audit.main import create_app
from audit.principal import CurrentUser
from tests.support import PASSWORD

CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


class Browser:
    """A TestClient with the form habits of a browser: read the token from the page, post it back."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def get(self, path: str, **kw: object):  # type: ignore[no-untyped-def]
        return self.client.get(path, **kw)  # type: ignore[arg-type]

    def submit(self, page: str, action: str, data: dict[str, object], **kw: object):  # type: ignore[no-untyped-def]
        token = csrf_of(self.client.get(page).text)
        return self.client.post(action, data={"csrf_token": token, **data}, **kw)  # type: ignore[arg-type]

    def sign_in(self, user: CurrentUser, password: str = PASSWORD) -> None:
        response = self.submit(
            "/signin", "/signin", {"username": user.username, "password": password}, follow_redirects=False
        )
        assert response.status_code == 303, response.text


@pytest.fixture
def web_app(connection: Connection) -> Iterator[TestClient]:
    app = create_app()
    app.dependency_overrides[get_bind] = lambda: connection
    with TestClient(app, base_url="https://testserver") as c:
        yield c


@pytest.fixture
def browser(web_app: TestClient) -> Browser:
    return Browser(web_app)


@pytest.fixture
def browser_for(connection: Connection):  # type: ignore[no-untyped-def]
    """A new, separate browser (its own cookies) per call."""
    made: list[TestClient] = []

    def make(user: CurrentUser | None = None) -> Browser:
        app = create_app()
        app.dependency_overrides[get_bind] = lambda: connection
        client = TestClient(app, base_url="https://testserver")
        client.__enter__()
        made.append(client)
        b = Browser(client)
        if user is not None:
            b.sign_in(user)
        return b

    yield make
    for c in made:
        c.__exit__(None, None, None)
