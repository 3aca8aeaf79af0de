"""Reading the TOML configuration file: find it, parse it, validate every section, refuse unknown keys."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from msgspec.structs import replace

from ..exits import ConfigurationError
from .model import (
    CONFIG_ENV,
    DATABASE_URL_ENV,
    DEFAULTS,
    LOG_TARGETS,
    NOTIFY_METHODS,
    NULL_SENDER,
    SYSTEM_CONFIG,
    Config,
    DnsConfig,
    Limits,
    LoggingConfig,
    NotificationsConfig,
)
from .service import service_from_mapping
from .syntax import addr_spec, is_domain, is_header_token, refuse_unknown


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
    known = {"database_url", "max_message_bytes", "delivery_timeout", "max_attempts"}
    known |= {"logging", "dns", "service", "notifications", "limits"}
    refuse_unknown(data, known, "")
    logging = _logging_from_mapping(data.get("logging", {}))
    dns = _dns_from_mapping(data.get("dns", {}))
    service = service_from_mapping(data.get("service", {}))
    notifications = _notifications_from_mapping(data.get("notifications", {}))
    limits = _limits_from_mapping(data.get("limits", {}))
    url = data.get("database_url")
    if url is not None and (not isinstance(url, str) or not url.strip()):
        raise ConfigurationError("database_url must be a non-empty string")
    size = data.get("max_message_bytes", DEFAULTS.max_message_bytes)
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ConfigurationError("max_message_bytes must be a positive integer")
    timeout = data.get("delivery_timeout", DEFAULTS.delivery_timeout)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigurationError("delivery_timeout must be a positive number of seconds")
    attempts = data.get("max_attempts", DEFAULTS.max_attempts)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ConfigurationError("max_attempts must be a positive integer")
    return Config(
        database_url=url,
        max_message_bytes=size,
        delivery_timeout=float(timeout),
        max_attempts=attempts,
        logging=logging,
        dns=dns,
        service=service,
        notifications=notifications,
        limits=limits,
        source=source,
    )


def _limits_from_mapping(data: Any) -> Limits:
    if not isinstance(data, dict):
        raise ConfigurationError("[limits] must be a table")
    names = set(Limits.__struct_fields__)
    refuse_unknown(data, names, "limits.")
    for name, value in data.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"limits.{name} must be a positive integer")
    return Limits(**data)


def _logging_from_mapping(data: Any) -> LoggingConfig:
    if not isinstance(data, dict):
        raise ConfigurationError("[logging] must be a table")
    refuse_unknown(data, {"target", "file", "facility"}, "logging.")
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


def _dns_from_mapping(data: Any) -> DnsConfig:
    if not isinstance(data, dict):
        raise ConfigurationError("[dns] must be a table")
    refuse_unknown(data, {"resolvers", "time_budget"}, "dns.")
    resolvers = data.get("resolvers", [])
    if not isinstance(resolvers, list) or not all(isinstance(r, str) for r in resolvers):
        raise ConfigurationError('dns.resolvers must be a list of addresses such as ["127.0.0.1", "[::1]:53"]')
    for resolver in resolvers:
        try:
            parse_resolver(resolver)
        except ValueError as exc:
            raise ConfigurationError(f"dns.resolvers: {exc}") from exc
    budget = data.get("time_budget", DEFAULTS.dns.time_budget)
    if isinstance(budget, bool) or not isinstance(budget, int | float) or budget <= 0:
        raise ConfigurationError("dns.time_budget must be a positive number of seconds")
    return DnsConfig(resolvers=tuple(resolvers), time_budget=float(budget))


def parse_resolver(text: str) -> tuple[str, int]:
    """'192.0.2.1', '192.0.2.1:5353', '::1' or '[::1]:5353' -> (address, port); ValueError otherwise."""
    import ipaddress

    host, port = text.strip(), 53
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise ValueError(f"{text!r} is not ADDRESS, ADDRESS:PORT or [IPv6]:PORT")
            port = int(rest[1:])
    elif host.count(":") == 1:
        host, _, port_text = host.partition(":")
        if not port_text.isdigit():
            raise ValueError(f"{text!r} has no valid port")
        port = int(port_text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address (name servers are given by address)") from None
    if not 0 < port < 65536:
        raise ValueError(f"{text!r}: port out of range")
    return host, port


_NOTIFICATIONS_KEYS = {
    "from_address",
    "method",
    "sendmail",
    "smtp_host",
    "smtp_port",
    "timeout",
    "message_id_domain",
    "instance_id",
    "key_file",
    "previous_keys",
    "templates",
    "bounce_address",
}


def _notifications_from_mapping(data: Any) -> NotificationsConfig:
    if not isinstance(data, dict):
        raise ConfigurationError("[notifications] must be a table")
    refuse_unknown(data, _NOTIFICATIONS_KEYS, "notifications.")
    from_address = _optional_text(data, "from_address")
    if from_address is not None and addr_spec(from_address) is None:
        raise ConfigurationError(
            'notifications.from_address must be one address with a domain, such as "Help Desk <helpdesk@example.org>"'
        )
    method = data.get("method", DEFAULTS.notifications.method)
    if method not in NOTIFY_METHODS:
        raise ConfigurationError(f"notifications.method must be one of {', '.join(NOTIFY_METHODS)}")
    port = data.get("smtp_port", DEFAULTS.notifications.smtp_port)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigurationError("notifications.smtp_port must be a port number from 1 to 65535")
    timeout = data.get("timeout", DEFAULTS.notifications.timeout)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigurationError("notifications.timeout must be a positive number of seconds")
    previous = data.get("previous_keys", DEFAULTS.notifications.previous_keys)
    if isinstance(previous, bool) or not isinstance(previous, int) or previous < 0:
        raise ConfigurationError("notifications.previous_keys must be an integer, 0 or more")
    domain = _optional_text(data, "message_id_domain")
    if domain is not None and not is_domain(domain):
        raise ConfigurationError("notifications.message_id_domain must be a domain name such as helpdesk.example.org")
    instance = _optional_text(data, "instance_id")
    if instance is not None and not is_header_token(instance):
        raise ConfigurationError("notifications.instance_id must be printable ASCII without spaces")
    bounce = _optional_text(data, "bounce_address")
    if bounce is not None and bounce != NULL_SENDER and addr_spec(bounce) != bounce:
        raise ConfigurationError('notifications.bounce_address must be a bare address (bounces@example.org) or "<>"')
    return NotificationsConfig(
        from_address=from_address,
        method=method,
        sendmail=_absolute_path(data, "sendmail") or DEFAULTS.notifications.sendmail,
        smtp_host=_optional_text(data, "smtp_host") or DEFAULTS.notifications.smtp_host,
        smtp_port=port,
        timeout=float(timeout),
        message_id_domain=domain.lower() if domain else None,
        instance_id=instance,
        key_file=_absolute_path(data, "key_file"),
        previous_keys=previous,
        templates=_absolute_path(data, "templates"),
        bounce_address=bounce,
    )


def _optional_text(data: dict[str, Any], key: str) -> str | None:
    """A string setting: absent is None; empty, non-string or multi-line is an error (header injection)."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or "\r" in value or "\n" in value:
        raise ConfigurationError(f"notifications.{key} must be a non-empty one-line string")
    return value.strip()


def _absolute_path(data: dict[str, Any], key: str) -> str | None:
    """A path setting: absolute or ~/..., because the MTA runs us in a working directory nobody chose."""
    value = _optional_text(data, key)
    if value is not None and not value.startswith(("/", "~")):
        raise ConfigurationError(f"notifications.{key} must be an absolute path (or start with ~/)")
    return value
