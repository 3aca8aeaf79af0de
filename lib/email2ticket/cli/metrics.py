"""`email2ticket metrics --textfile PATH`: the help desk's numbers as a node-exporter textfile (ops/metrics.py).

For an installation without the resident service's endpoint (`[service] metrics`), or beside it: run it from
cron or a systemd timer, writing into node-exporter's --collector.textfile.directory as `email2ticket.prom`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from ..config.model import Config


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--textfile", metavar="PATH", required=True, help="write the metrics here (replaced atomically; end it .prom)"
    )
    parser.set_defaults(handler=cmd_metrics)


def cmd_metrics(args: argparse.Namespace, config: Config) -> int:
    """0 when written from a readable database; 1 when the database could not be read (the file says so too)."""
    from ..exits import ConfigurationError

    try:
        from ..ops.metrics import write_textfile

        ok = write_textfile(config, args.textfile)
    except ImportError:
        needed = "metrics need the prometheus_client package: pip install 'email2ticket[metrics]'"
        raise ConfigurationError(needed) from None
    except OSError as exc:
        raise ConfigurationError(f"cannot write {args.textfile}: {exc.strerror or exc}") from exc
    return 0 if ok else 1
