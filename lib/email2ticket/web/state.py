"""What one running web admin holds: its settings, the stores it reads and writes, its login throttle.

One object, made once by web/app.py and reached from every request (`web_state(request)`), instead of
module-level globals: a test builds as many independent applications as it likes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from msgspec import Struct
from starlette.requests import Request

from ..store.accounts import AccountStore
from ..store.admin import AdminStore
from .throttle import LoginThrottle

if TYPE_CHECKING:
    from ..config.model import Config
    from ..ops.checks import Check
    from ..store.delivery import DeliveryStore

DOCTOR_CACHE_SECONDS = 300.0


class WebSettings(Struct, frozen=True):
    """How the web admin runs. Everything but `config` has a default: it needs no configuration of its own."""

    config: Config
    config_file: str | None = None  # --config as given, for doctor (which reads the file itself)
    database_url: str | None = None  # --database-url as given, for doctor
    trusted_proxies: tuple[str, ...] = ()  # X-Forwarded-Proto/-For are honoured only from these
    session_idle: int = 2 * 3600  # seconds without a request before a session ends
    session_max: int = 12 * 3600  # seconds after sign-in when a session ends anyway
    page_size: int = 50


class WebState:
    """What the web application holds between requests: its settings, stores, login throttle, doctor's checks."""

    def __init__(self, settings: WebSettings, admin: AdminStore, accounts: AccountStore) -> None:
        self.settings = settings
        self.admin = admin
        self.accounts = accounts
        self.throttle = LoginThrottle()
        self._doctor: tuple[float, list[Check]] | None = None

    @classmethod
    def create(cls, settings: WebSettings) -> WebState:
        config = settings.config
        admin = AdminStore(config.resolved_database_url(), lock_timeout=config.lock_timeout)
        return cls(settings, admin, AccountStore(admin))

    @property
    def config(self) -> Config:
        return self.settings.config

    @contextlib.contextmanager
    def delivery_store(self) -> Iterator[DeliveryStore]:
        """A delivery store for one request (release, replay, notifications), closed afterwards."""
        from ..store.delivery import DeliveryStore

        store = DeliveryStore(self.config.resolved_database_url(), lock_timeout=self.config.lock_timeout)
        try:
            yield store
        finally:
            store.dispose()

    def doctor(self, *, fresh: bool = False) -> list[Check]:
        """`email2ticket doctor`'s checks, run at most every few minutes (one of them starts a process)."""
        import os

        from ..ops.doctor import run_checks

        now = time.monotonic()
        if fresh or self._doctor is None or now - self._doctor[0] > DOCTOR_CACHE_SECONDS:
            checks = run_checks(
                self.settings.config_file,
                database_url=self.settings.database_url,
                environ=os.environ,
                cwd=os.getcwd(),
                user=None,
                postfix_dir=None,
            )
            self._doctor = (now, checks)
        return self._doctor[1]


def web_state(request: Request) -> WebState:
    state: Any = request.app.state.web
    assert isinstance(state, WebState)
    return state
