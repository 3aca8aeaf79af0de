"""Fixtures of the web admin's tests: the application on a fresh database, and an admin driving it over HTTP.

    web            the WebAdmin (ASGI application) on `database_url` (SQLite and PostgreSQL), schema made
    make_web       make_web(**WebSettings fields, notifications=NotificationsConfig(...)) -> another one
    admin          an Admin (below) signed in as "admin" to `web`
    deliver        deliver(raw, sender=None) -> (action, ticket, message row): the delivery layer, in this process

An Admin (web/webclient.py) is Starlette's TestClient (no redirects followed, so each test sees every status and
Location) with helpers that fill in the session's CSRF token the way the page's own hidden field does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from msgspec.structs import replace

from email2ticket.config.model import Config, NotificationsConfig
from email2ticket.store.accounts import AccountStore
from email2ticket.store.admin import AdminStore
from email2ticket.web.app import WebAdmin
from email2ticket.web.state import WebSettings
from web.webclient import PASSWORD, Admin


@pytest.fixture(autouse=True)
def quick_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with the smallest cost: these tests sign in hundreds of times (0.4 s each with the real cost on
    a busy build machine). The real parameters are checked in test_web_accounts.py, and the executables the
    CLI and browser tests run use them."""
    from argon2 import PasswordHasher

    from email2ticket.store import accounts

    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    monkeypatch.setattr(accounts, "_dummy_hash", None)


@pytest.fixture
def web_url(database_url: str) -> str:
    AdminStore(database_url).init()
    return database_url


@pytest.fixture
def make_web(web_url: str, tmp_path: Path) -> Callable[..., WebAdmin]:
    def factory(notifications: NotificationsConfig | None = None, **options: Any) -> WebAdmin:
        config = Config(database_url=web_url, notifications=notifications or NotificationsConfig())
        settings = replace(WebSettings(config, database_url=web_url), **options)
        return WebAdmin(settings)

    return factory


@pytest.fixture
def web(make_web: Callable[..., WebAdmin]) -> WebAdmin:
    app = make_web()
    AccountStore(app.state.admin).add("admin", PASSWORD)
    return app


@pytest.fixture
def make_admin() -> Iterator[Callable[..., Admin]]:
    made: list[Admin] = []

    def factory(app: WebAdmin, *, login: bool = True, **options: Any) -> Admin:
        admin = Admin(app, **options)
        made.append(admin)
        if login:
            assert admin.login().status_code == 303
        return admin

    yield factory
    for admin in made:
        admin.close()


@pytest.fixture
def admin(web: WebAdmin, make_admin: Callable[..., Admin]) -> Admin:
    return make_admin(web)


@pytest.fixture
def deliver(web: WebAdmin) -> Callable[..., tuple[str, int | None, int | None]]:
    """Deliver raw bytes through the delivery layer, as the pipe does (no notification is sent)."""
    from email2ticket.delivery.run import deliver_message
    from email2ticket.mail.envelope import Envelope

    def run(raw: bytes, sender: str | None = None) -> tuple[str, int | None, int | None]:
        with web.state.delivery_store() as store:
            result = deliver_message(raw, Envelope(sender, "helpdesk@helpdesk.example", None), store, web.state.config)
        assert result.outcome is not None, (result.error, result.crash)
        return result.outcome.action, result.outcome.ticket, result.outcome.message_row

    return run
