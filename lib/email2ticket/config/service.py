"""The [service] table: the resident service's sockets, processes, timer and metrics (config/model.py ServiceConfig).

Its own module because the listening addresses need parsing of their own (`unix:/path`, loopback TCP only),
shared with `email2ticket serve --lmtp` (cli/serve.py) and the service's binding (service/server.py).
"""

from __future__ import annotations

from typing import Any

from ..exits import ConfigurationError
from .model import DEFAULTS, FALLBACKS, ServiceConfig
from .syntax import is_octal_mode, refuse_unknown


def service_from_mapping(data: Any) -> ServiceConfig:
    if not isinstance(data, dict):
        raise ConfigurationError("[service] must be a table")
    known = {"socket", "socket_mode", "socket_group", "lmtp", "lmtp_allow_tcp", "user", "fallback"}
    refuse_unknown(data, known | {"workers", "threads", "retry_interval", "metrics"}, "service.")
    socket = data.get("socket")
    if socket is not None and (not isinstance(socket, str) or not socket.startswith("/")):
        raise ConfigurationError("service.socket must be an absolute path such as /run/email2ticket/deliver.sock")
    mode = data.get("socket_mode", "0660")
    if not isinstance(mode, str) or not is_octal_mode(mode):
        raise ConfigurationError('service.socket_mode must be an octal string such as "0660"')
    if int(mode, 8) & 0o007:
        raise ConfigurationError(
            f'service.socket_mode "{mode}" gives other users access to the service\'s sockets: use "0660" with '
            'service.socket_group naming the MTA\'s group (or "0600")'
        )
    group = data.get("socket_group")
    if group is not None and (not isinstance(group, str) or not group):
        raise ConfigurationError("service.socket_group must be a group name")
    allow_tcp = data.get("lmtp_allow_tcp", False)
    if not isinstance(allow_tcp, bool):
        raise ConfigurationError("service.lmtp_allow_tcp must be true or false")
    lmtp = data.get("lmtp")
    if lmtp is not None:
        if not isinstance(lmtp, str):
            raise ConfigurationError('service.lmtp must be "unix:/path" or "127.0.0.1:PORT"')
        try:
            parse_listen_address(lmtp)
        except ValueError as exc:
            raise ConfigurationError(f"service.lmtp: {exc}") from exc
        check_lmtp_tcp(lmtp, allow_tcp, "service.lmtp")
    user = data.get("user")
    if user is not None and (not isinstance(user, str) or not user.strip() or any(c.isspace() for c in user)):
        raise ConfigurationError("service.user must be a user name (the user the service runs as)")
    fallback = data.get("fallback", "standalone")
    if fallback not in FALLBACKS:
        raise ConfigurationError(f"service.fallback must be one of {', '.join(FALLBACKS)}")
    counts: dict[str, int] = {}
    for key, default in (("workers", DEFAULTS.service.workers), ("threads", DEFAULTS.service.threads)):
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
            raise ConfigurationError(f"service.{key} must be an integer from 1 to 64")
        counts[key] = value
    retry = data.get("retry_interval", DEFAULTS.service.retry_interval)
    if isinstance(retry, bool) or not isinstance(retry, int | float) or not (retry == 0 or 1 <= retry <= 86400):
        raise ConfigurationError("service.retry_interval must be 0 (off) or a number of seconds from 1 to 86400")
    metrics = data.get("metrics")
    if metrics is not None:
        metrics = _metrics_address(metrics)
    return ServiceConfig(
        socket=socket,
        socket_mode=int(mode, 8),
        socket_group=group,
        lmtp=lmtp,
        lmtp_allow_tcp=allow_tcp,
        user=user,
        fallback=fallback,
        workers=counts["workers"],
        threads=counts["threads"],
        retry_interval=float(retry),
        metrics=metrics,
    )


def _metrics_address(value: Any) -> str:
    """`metrics = "127.0.0.1:9464"`: a loopback TCP address (the numbers are no secret, but nobody else's to see)."""
    if not isinstance(value, str) or value.startswith("unix:"):
        raise ConfigurationError('service.metrics must be a loopback "HOST:PORT" such as "127.0.0.1:9464"')
    try:
        parse_listen_address(value)
    except ValueError as exc:
        raise ConfigurationError(f"service.metrics: {str(exc).replace('LMTP listens', 'metrics are served')}") from exc
    return value


def parse_listen_address(text: str) -> tuple[str, str | int]:
    """'unix:/path' -> ("unix", path); '127.0.0.1:24' or '[::1]:24' -> (host, port); ValueError otherwise.

    TCP is refused on anything but loopback: LMTP has no authentication, so whoever reaches the port
    could open tickets in anyone's name (and the metrics endpoint has none either).
    """
    import ipaddress

    if text.startswith("unix:"):
        path = text[len("unix:") :]
        if not path.startswith("/"):
            raise ValueError(f"{text!r}: the socket path must be absolute (unix:/run/email2ticket/lmtp.sock)")
        return "unix", path
    host, sep, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r} is not unix:/PATH, HOST:PORT or [IPv6]:PORT")
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            raise ValueError(f"{text!r}: the host must be a loopback address such as 127.0.0.1") from None
        if not loopback:
            raise ValueError(f"{text!r}: LMTP listens on loopback only (it has no authentication)")
    return host, int(port_text)


def check_lmtp_tcp(address: str, allow_tcp: bool, name: str) -> None:
    """A TCP address for LMTP only with service.lmtp_allow_tcp: every local user can connect to a loopback
    port and deliver mail in anyone's name, where a Unix socket lets only its owner and group in."""
    if not address.startswith("unix:") and not allow_tcp:
        raise ConfigurationError(
            f"{name} {address!r} is a TCP port, where every local user can connect and deliver mail in anyone's "
            "name: use unix:/path, or set service.lmtp_allow_tcp = true to accept that (Authentication-Results "
            "headers are then never trusted on it)"
        )
