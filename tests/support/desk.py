"""One help desk on one fresh database, driven through the real executables: the ``desk`` of the delivery,
notification and quarantine tests (and, specialised, of the MTA tests: support/mta/fixtures.py).

    desk = Desk(url, run_admin, run_deliver, config=home / "email2ticket.toml", settings={"max_attempts": 3})
    desk.deliver("new_ticket.eml")           # a fixture of tests/fixtures/mail, or raw bytes -> Result
    desk.deliver_ok(raw)["action"]           # a delivery that must exit 0: its JSON outcome
    desk.admin("ticket", "close", "1")       # exit 0 asserted unless check=False
    desk.ticket(1), desk.tickets(), desk.messages("hold"), desk.notifications()
    desk.configure(dns={"time_budget": 1})   # the next commands read the desk's settings with these changes

With a ``config`` path the desk writes that TOML file from ``settings`` (tables as nested dicts) and passes
``--config`` to every command; with ``url_in_config`` the file names the database, else ``--database-url`` does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from support.mail import MAIL
from support.run import Result

Settings = Mapping[str, Any]
MakeDesk = Callable[..., "Desk"]  # the make_desk fixture (tests/conftest.py)


def reason(data: dict[str, Any], rule: str) -> str:
    """Why `rule` hit or missed, from a delivery's JSON outcome (its "rule: why" reasons)."""
    return next(r.split(": ", 1)[1] for r in data["reasons"] if r.startswith(rule + ": "))


def _merged(base: Settings, changes: Settings) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = _merged(merged[key], value) if isinstance(value, Mapping) and key in merged else value
    return merged


def toml(settings: Settings) -> str:
    """A configuration file: the top-level keys, then one [table] a nested mapping (values as JSON, which TOML
    reads the same for the strings, numbers, booleans and lists a configuration holds)."""
    lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items() if not isinstance(value, Mapping)]
    for table, values in settings.items():
        if isinstance(values, Mapping):
            lines += [f"[{table}]", *(f"{key} = {json.dumps(value)}" for key, value in values.items())]
    return "\n".join(lines) + "\n"


class Desk:
    """email2ticket on one database: its configuration file, deliveries, admin commands, what it stored."""

    def __init__(
        self,
        url: str,
        admin: Callable[..., Result],
        deliver: Callable[..., Result] | None = None,
        *,
        config: Path | None = None,
        settings: Settings | None = None,
        url_in_config: bool = False,
        log_file: Path | None = None,
        recipient: str | None = None,
        init: bool | None = None,
    ) -> None:
        """``init`` None: only on PostgreSQL (the first delivery makes a SQLite database's schema itself).
        ``recipient``: the envelope recipient every delivery passes (--recipient) unless it names its own."""
        self.url, self._admin, self._deliver = url, admin, deliver
        self.config, self.url_in_config, self.log_file, self.recipient = config, url_in_config, log_file, recipient
        self.settings = dict(settings or {})
        if log_file is not None:
            self.settings["logging"] = {"target": "file", "file": str(log_file)}
        if config is not None:
            self.configure()
        if init or (init is None and not url.startswith("sqlite")):
            self.admin("init")

    # --- configuration ------------------------------------------------------------------------------

    def configure(self, **changes: Any) -> None:
        """(Re)write the configuration file: the desk's settings with `changes` (a table's keys one by one).
        Every call starts again from the desk's settings, so `configure()` undoes the changes."""
        assert self.config is not None, "a desk without a configuration file"
        settings = _merged(self.settings, changes)
        if self.url_in_config:
            settings = {"database_url": self.url, **settings}
        self.config.write_text(toml(settings))

    def options(self) -> tuple[str, ...]:
        """What every command gets: --config, and --database-url unless the file names the database."""
        config = ("--config", str(self.config)) if self.config is not None else ()
        return config if self.url_in_config else (*config, "--database-url", self.url)

    # --- deliveries ---------------------------------------------------------------------------------

    def pipe(self, *args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> Result:
        """bin/email2ticket-deliver with the desk's options and `args`, nothing else."""
        assert self._deliver is not None, "this desk delivers through its MTA"
        return self._deliver(*self.options(), *args, stdin=stdin, env=env)

    def deliver(
        self,
        mail: str | bytes,
        *args: str,
        sender: str | None = None,
        recipient: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Result:
        """Deliver a fixture of tests/fixtures/mail (by name) or raw bytes, with --json."""
        raw = (MAIL / mail).read_bytes() if isinstance(mail, str) else mail
        envelope = ["--recipient", recipient or self.recipient] if recipient or self.recipient else []
        envelope += ["--sender", sender] if sender is not None else []
        return self.pipe("--json", *envelope, *args, stdin=raw, env=env)

    def deliver_ok(self, mail: str | bytes, *args: str, sender: str | None = None, recipient: str | None = None) -> Any:
        """A delivery that must exit 0: its JSON outcome."""
        result = self.deliver(mail, *args, sender=sender, recipient=recipient)
        assert result.returncode == 0, result
        return result.json

    def deliver_here(self, raw: bytes, *, recipient: str | None = None) -> str:
        """The pipe's delivery and sending, in this process (the same functions): for tests of many rounds."""
        from email2ticket.config.load import load_config
        from email2ticket.delivery.run import deliver_message, notify
        from email2ticket.mail.envelope import Envelope
        from email2ticket.store.delivery import DeliveryStore

        config = load_config(str(self.config), database_url=self.url, environ={})
        store = DeliveryStore(self.url, lock_timeout=config.lock_timeout)
        try:
            result = deliver_message(raw, Envelope(None, recipient or self.recipient, None), store, config)
            notify(result, store, config)
        finally:
            store.dispose()
        assert result.outcome is not None, result
        return result.outcome.action

    # --- admin commands -----------------------------------------------------------------------------

    def admin(self, *args: str, stdin: bytes = b"", check: bool = True) -> Result:
        """bin/email2ticket with the desk's options; its exit status 0 asserted unless `check` is false."""
        result = self._admin(*self.options(), *args, stdin=stdin)
        assert result.returncode == 0 or not check, result
        return result

    def json(self, *args: str) -> Any:
        """An admin command's --json output, parsed."""
        return json.loads(self.admin(*args, "--json").stdout)

    def set(self, name: str, value: str) -> None:
        self.admin("settings", "set", name, value)

    def ticket(self, number: int) -> dict[str, Any]:
        return self.json("ticket", "show", str(number))  # type: ignore[no-any-return]

    def tickets(self) -> list[dict[str, Any]]:
        return list(self.json("tickets", "list"))

    def messages(self, action: str | None = None) -> list[dict[str, Any]]:
        return list(self.json("messages", "list", *(("--action", action) if action else ())))

    def notifications(self) -> list[dict[str, Any]]:
        return list(self.json("notifications", "list"))

    def sql(self, statement: str, **params: Any) -> list[Any]:
        """One statement in its own transaction on the desk's database; the rows it returns."""
        engine = create_engine(self.url)
        try:
            with engine.begin() as connection:
                result = connection.execute(text(statement), params)
                return list(result) if result.returns_rows else []
        finally:
            engine.dispose()
