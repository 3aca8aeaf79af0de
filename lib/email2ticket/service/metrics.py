"""Prometheus metrics of the resident service, on a loopback address (`[service] metrics = "127.0.0.1:9464"`).

From the maintained client library, prometheus_client (the optional extra `email2ticket[metrics]`), imported
only here and only when the setting is on: the pipe command and the thin client never load it.

What is exposed, and why an admin watches it:
- email2ticket_messages_total{action, exit_code}: every delivery the service made (dry runs aside); a rising
  share of exit_code="75" means mail is piling up in the MTA's queue.
- email2ticket_delivery_seconds: a histogram of the time from a message's hand-over to its answer.
- email2ticket_database_errors_total: deliveries deferred because the database failed or is not initialised.
- email2ticket_service_in_flight: messages handed over and not answered yet, across the service's processes.
- email2ticket_quarantine_messages, email2ticket_notifications{status}, email2ticket_database_up: read from
  the database at each scrape (ops/metrics.py), so they hold whatever wrote them: other hosts, pipes, admins.

The service may run several pre-forked processes, each counting its own deliveries. So the counters live in
prometheus_client's multiprocess mode: every process writes its values to memory-mapped files in a private
directory, and the endpoint (the first process's thread) adds them up. The directory's name must be in the
environment before prometheus_client is first imported, and before the workers are forked: `MetricsServer`
sees to both, and removes the directory when the service stops.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import TYPE_CHECKING

from ..config.service import parse_listen_address
from ..exits import ConfigurationError, DeliveryError, SchemaError
from ..ops.metrics import DatabaseCollector

if TYPE_CHECKING:
    from ..config.model import Config
    from ..delivery.run import Result

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def delivery_labels(result: Result) -> tuple[str, str, bool]:
    """(action, exit code, whether the database failed) of one delivery; action "none" when it failed first."""
    outcome = result.outcome
    action = str(outcome.action) if outcome is not None else "none"
    return action, str(result.exit_code), is_database_error(result.error)


def is_database_error(error: DeliveryError | None) -> bool:
    """A failure of the database (unreachable, timed out, read-only, no schema), as store/errors.py raises it."""
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(error, SchemaError):
        return True
    cause = error.__cause__ if error is not None else None
    return isinstance(cause, SQLAlchemyError)


class Metrics:
    """One service process's instruments; their values go to the shared directory (multiprocess mode)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.messages = Counter(
            "email2ticket_messages",
            "Deliveries by the service, by audit action and exit status",
            ("action", "exit_code"),
        )
        self.latency = Histogram(
            "email2ticket_delivery_seconds", "Time from a message's hand-over to its answer", buckets=LATENCY_BUCKETS
        )
        self.database_errors = Counter(
            "email2ticket_database_errors", "Deliveries deferred (75) because the database failed"
        )
        self.in_flight = Gauge(
            "email2ticket_service_in_flight", "Messages handed over and not answered yet", multiprocess_mode="livesum"
        )

    def delivered(self, result: Result, started: float) -> None:
        """Count one delivery that started at `started` (time.monotonic()); dry runs are not deliveries."""
        if result.dry_run:
            return
        action, code, database = delivery_labels(result)
        self.messages.labels(action=action, exit_code=code).inc()
        self.latency.observe(time.monotonic() - started)
        if database:
            self.database_errors.inc()


class MetricsServer:
    """The endpoint: an HTTP thread on the loopback address, adding up every process's values."""

    def __init__(self, config: Config) -> None:
        address = config.service.metrics
        assert address is not None
        host, port = parse_listen_address(address)
        self.directory = tempfile.mkdtemp(prefix="email2ticket-metrics-")  # 0700: the service's user only
        os.environ[MULTIPROC_ENV] = self.directory  # before the first import of prometheus_client, and the fork
        try:
            from prometheus_client import CollectorRegistry, start_http_server
            from prometheus_client.multiprocess import MultiProcessCollector
        except ImportError:
            self._remove()
            raise ConfigurationError(
                "service.metrics needs the prometheus_client package: pip install 'email2ticket[metrics]'"
            ) from None
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.directory)  # type: ignore[no-untyped-call]
        registry.register(DatabaseCollector(config))
        try:
            self.server, self.thread = start_http_server(int(port), addr=str(host), registry=registry)
        except OSError as exc:
            self._remove()
            raise ConfigurationError(f"cannot serve metrics on {address}: {exc.strerror or exc}") from exc
        self.where = address

    def process_ended(self, pid: int) -> None:
        """A worker died: its in-flight count no longer counts (its counters do)."""
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, self.directory)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._remove()

    def _remove(self) -> None:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(self.directory, ignore_errors=True)
