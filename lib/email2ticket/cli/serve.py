"""`email2ticket serve`: run the resident delivery service (see service/server.py and service/worker.py).

The options override the configuration's [service] table, for trying the service out and for tests;
production runs it from the systemd unit in postfix/ with everything in the configuration file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from ..config.model import Config


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--socket", metavar="PATH", help="Unix socket for email2ticket-deliver ('' = none)")
    parser.add_argument(
        "--lmtp", metavar="ADDR", help="LMTP on unix:/PATH, or 127.0.0.1:PORT with service.lmtp_allow_tcp ('' = none)"
    )
    parser.add_argument("--workers", type=int, metavar="N", help="service processes")
    parser.add_argument("--threads", type=int, metavar="N", help="concurrent deliveries per process")
    parser.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    from ..exits import ConfigurationError
    from ..service.server import serve

    for name in ("workers", "threads"):
        value = getattr(args, name)
        if value is not None and not 1 <= value <= 64:
            raise ConfigurationError(f"--{name} must be from 1 to 64")
    if args.lmtp:
        from ..config.service import check_lmtp_tcp, parse_listen_address

        try:
            parse_listen_address(args.lmtp)
        except ValueError as exc:
            raise ConfigurationError(f"--lmtp: {exc}") from exc
        check_lmtp_tcp(args.lmtp, config.service.lmtp_allow_tcp, "--lmtp")

    def load() -> Config:  # SIGHUP: the configuration as this command line found it, read again
        from ..config.load import load_config

        return load_config(args.config, database_url=args.database_url)

    return serve(config, socket_path=args.socket, lmtp=args.lmtp, workers=args.workers, threads=args.threads, load=load)
