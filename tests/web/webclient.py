"""An admin's browser without JavaScript, for the HTTP-level tests: Starlette's TestClient with the CSRF token
the pages carry filled into each form post, the way their hidden field does.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.testclient import TestClient

from email2ticket.web.app import WebAdmin

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


class Admin:
    """A browser without JavaScript: GETs pages, posts their forms with the CSRF token they carry."""

    def __init__(self, app: WebAdmin, *, client: tuple[str, int] = ("testclient", 50000)) -> None:
        self.app = app
        self.http = TestClient(app, follow_redirects=False, client=client)
        self.token: str | None = None

    def get(self, path: str, **options: Any) -> Any:
        return self.http.get(path, **options)

    def page_token(self, path: str = "/users") -> str:
        self.token = csrf_of(self.get(path).text)
        return self.token

    def post(self, path: str, data: dict[str, Any] | None = None, **options: Any) -> Any:
        """POST `data` with this session's CSRF token (unless `data` names its own `csrf`)."""
        token = self.token or self.page_token()
        return self.http.post(path, data={"csrf": token, **(data or {})}, **options)

    def login(self, name: str = "admin", password: str = PASSWORD) -> Any:
        token = csrf_of(self.get("/login").text)
        response = self.http.post("/login", data={"csrf": token, "name": name, "password": password})
        self.token = None
        return response

    def follow(self, response: Any) -> Any:
        """The page a 303 leads to."""
        assert response.status_code == 303, (response.status_code, response.text[:500])
        return self.get(response.headers["location"])

    def close(self) -> None:
        self.http.close()
