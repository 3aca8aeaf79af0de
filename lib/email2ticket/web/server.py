"""`email2ticket web`: serve the web admin with uvicorn, on loopback unless the admin says otherwise.

TLS is the reverse proxy's job (README, "Web admin"): the web admin speaks plain HTTP to it, and believes its
X-Forwarded-Proto (for Secure cookies and HSTS) and X-Forwarded-For (for login throttling) only when
`--trusted-proxy` names it. uvicorn's own proxy-header handling is off: by default it would trust 127.0.0.1,
which on a shared host is every local user. SIGTERM and Ctrl-C stop it gracefully.
"""

from __future__ import annotations

import ipaddress
import sys
from typing import TYPE_CHECKING

import uvicorn

from ..exits import ConfigurationError
from .app import WebAdmin
from .state import WebSettings

if TYPE_CHECKING:
    from ..config.model import Config


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT or [IPv6]:PORT (an IP address, or localhost); ConfigurationError for anything else."""
    host, sep, port = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        number = int(port)
        if not sep or not 0 < number < 65536:
            raise ValueError
        if host != "localhost":
            ipaddress.ip_address(host)
    except ValueError:
        expected = "HOST:PORT or [IPv6]:PORT with an IP address (or localhost)"
        raise ConfigurationError(f"--listen: expected {expected}, not {text!r}") from None
    return host, number


def is_loopback(host: str) -> bool:
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


def _check_proxies(proxies: tuple[str, ...]) -> None:
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigurationError(f"--trusted-proxy: {proxy!r} is not an IP address or network") from None


def serve(
    config: Config,
    *,
    listen: str,
    trusted_proxies: tuple[str, ...] = (),
    config_file: str | None = None,
    database_url: str | None = None,
) -> int:
    host, port = parse_listen(listen)
    _check_proxies(trusted_proxies)
    settings = WebSettings(config, config_file, database_url, trusted_proxies)
    admin = WebAdmin(settings)
    if not admin.state.accounts.accounts():
        print("warning: there is no web account yet: add one with `email2ticket web-user add NAME`", file=sys.stderr)
    if not is_loopback(host):
        print(
            f"warning: listening on {host}, not on loopback: put the web admin behind a reverse proxy with TLS",
            file=sys.stderr,
        )
    uvicorn.run(
        admin,
        host=host,
        port=port,
        proxy_headers=False,
        server_header=False,
        date_header=True,
        log_level="info",
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
        lifespan="off",
    )
    return 0
