"""Infrastructure configuration: where the database is, how big a message may be, how long a delivery may take.

Rule settings (restrict_replies, separators, ...) live in the database so an admin can change them
without touching the MTA; this file holds only what the process needs before it can reach the
database. The TOML file is validated once into a frozen dataclass: an unknown key is an error, because
a misspelt key silently ignored is a setting the admin believes is in force. Every error here is a
ConfigurationError, which the CLI turns into 75 so the MTA keeps the mail while the admin fixes it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .exits import ConfigurationError

SYSTEM_CONFIG = Path("/etc/email2ticket/config.toml")
CONFIG_ENV = "EMAIL2TICKET_CONFIG"
DATABASE_URL_ENV = "EMAIL2TICKET_DATABASE_URL"
LOG_TARGETS = ("auto", "syslog", "file", "none")


@dataclass(frozen=True)
class LoggingConfig:
    """Where the one-line-per-delivery log goes. Never stdout: Postfix reads it as our answer."""

    target: str = "auto"  # auto: syslog when /dev/log exists, else `file` when set, else nowhere
    file: str | None = None
    facility: str = "mail"


@dataclass(frozen=True)
class Config:
    """Validated infrastructure settings; see examples/config.toml for each key's meaning."""

    database_url: str | None = None
    max_message_bytes: int = 50 * 1024 * 1024
    delivery_timeout: float = 60.0
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    source: str | None = None  # the file this came from, for error messages and `doctor`

    def resolved_database_url(self) -> str:
        """The URL to connect to; without one, the embedded SQLite file in the user's data directory."""
        return self.database_url or default_database_url()

    @property
    def lock_timeout(self) -> float:
        """Database lock/statement timeouts stay below the delivery budget, so we roll back ourselves."""
        return max(1.0, self.delivery_timeout * 0.75)


def default_database_url() -> str:
    """The embedded default: a SQLite file in the invoking user's data directory (platformdirs)."""
    from platformdirs import user_data_path  # only paid for when no database is configured

    return f"sqlite:///{user_data_path('email2ticket') / 'email2ticket.db'}"


def find_config_file(explicit: str | None, environ: dict[str, str] | os._Environ[str]) -> Path | None:
    """--config FILE, else $EMAIL2TICKET_CONFIG, else /etc/email2ticket/config.toml if present."""
    if explicit:
        return Path(explicit)
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    return SYSTEM_CONFIG if SYSTEM_CONFIG.exists() else None


def load_config(
    explicit: str | None = None,
    *,
    database_url: str | None = None,
    environ: dict[str, str] | os._Environ[str] | None = None,
) -> Config:
    """Read and validate the configuration; --database-url beats the environment beats the file."""
    env = os.environ if environ is None else environ
    path = find_config_file(explicit, env)
    config = parse_config_file(path) if path is not None else Config()
    url = database_url or env.get(DATABASE_URL_ENV) or None
    return replace(config, database_url=url) if url else config


def parse_config_file(path: Path) -> Config:
    """Load one TOML file; any problem is a ConfigurationError naming the file."""
    import tomllib  # only paid for when a configuration file exists

    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigurationError(f"cannot read configuration file {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"configuration file {path} is not valid TOML: {exc}") from exc
    try:
        return config_from_mapping(data, source=str(path))
    except ConfigurationError as exc:
        raise ConfigurationError(f"configuration file {path}: {exc.reason}") from exc


def config_from_mapping(data: dict[str, Any], *, source: str | None = None) -> Config:
    """Validate a parsed TOML document into a Config; unknown keys and wrong types are errors."""
    known = {"database_url", "max_message_bytes", "delivery_timeout", "logging"}
    _refuse_unknown(data, known, "")
    logging = _logging_from_mapping(data.get("logging", {}))
    url = data.get("database_url")
    if url is not None and (not isinstance(url, str) or not url.strip()):
        raise ConfigurationError("database_url must be a non-empty string")
    size = data.get("max_message_bytes", Config.max_message_bytes)
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ConfigurationError("max_message_bytes must be a positive integer")
    timeout = data.get("delivery_timeout", Config.delivery_timeout)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigurationError("delivery_timeout must be a positive number of seconds")
    return Config(
        database_url=url,
        max_message_bytes=size,
        delivery_timeout=float(timeout),
        logging=logging,
        source=source,
    )


def _logging_from_mapping(data: Any) -> LoggingConfig:
    if not isinstance(data, dict):
        raise ConfigurationError("[logging] must be a table")
    _refuse_unknown(data, {"target", "file", "facility"}, "logging.")
    target = data.get("target", "auto")
    if target not in LOG_TARGETS:
        raise ConfigurationError(f"logging.target must be one of {', '.join(LOG_TARGETS)}")
    log_file = data.get("file")
    if log_file is not None and not isinstance(log_file, str):
        raise ConfigurationError("logging.file must be a path")
    if target == "file" and not log_file:
        raise ConfigurationError("logging.target = 'file' needs logging.file")
    facility = data.get("facility", "mail")
    if not isinstance(facility, str):
        raise ConfigurationError("logging.facility must be a syslog facility name such as 'mail'")
    return LoggingConfig(target=target, file=log_file, facility=facility)


def _refuse_unknown(data: dict[str, Any], known: set[str], prefix: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigurationError(f"unknown setting {prefix}{unknown[0]} (known: {', '.join(sorted(known))})")
