"""The help desk's numbers from its database as Prometheus metrics: for the service's endpoint
(service/metrics.py) and for `email2ticket metrics --textfile PATH`, a node-exporter textfile.

`DatabaseCollector` reads the queue sizes an admin sets alerts on at each scrape: the quarantine and the
notifications by state (store/monitoring.py), and whether the database could be read at all. The textfile
adds the audit trail's totals: every message recorded, by action and exit status, and when
the newest arrived. A 75 whose transaction rolled back leaves no record, so the audit's count of 75s is only
the `defer`red attempts of failing messages: the service's endpoint counts every answer, the textfile what
was written. Without a service, run the command from cron or a systemd timer as often as node-exporter is
scraped. prometheus_client is imported only when metrics are asked for.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from ..config.model import Config
    from ..store.delivery import DeliveryStore
    from ..store.monitoring import AuditTotals


class DatabaseCollector:
    """Reads the queue sizes at each scrape (a collector of prometheus_client's, called on the HTTP thread);
    with `audit`, the audit trail's totals too. `up` says whether the last collection could read the database."""

    def __init__(self, config: Config, *, who: str = "email2ticket serve", audit: bool = False) -> None:
        self.config = config
        self.who = who
        self.audit = audit
        self.up = False
        self._store: DeliveryStore | None = None

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        from ..store.delivery import DeliveryStore
        from ..store.monitoring import AuditTotals, audit_totals, queue_sizes

        up = GaugeMetricFamily("email2ticket_database_up", "Whether the last scrape could read the database")
        try:
            if self._store is None:
                url = self.config.resolved_database_url()
                self._store = DeliveryStore(url, lock_timeout=self.config.lock_timeout, pool_size=1)
            sizes = queue_sizes(self._store)
            totals = audit_totals(self._store) if self.audit else AuditTotals()
        except Exception as exc:  # the database is down: say so, never fail the scrape
            print(f"{self.who}: metrics: cannot read the database: {exc}", file=sys.stderr, flush=True)
            self.up = False
            up.add_metric([], 0)
            yield up
            return
        self.up = True
        up.add_metric([], 1)
        yield up
        quarantine = GaugeMetricFamily(
            "email2ticket_quarantine_messages", "Messages in quarantine, waiting for an admin"
        )
        quarantine.add_metric([], sizes.quarantine)
        yield quarantine
        notifications = GaugeMetricFamily(
            "email2ticket_notifications", "Notifications not sent (yet), by state", labels=["status"]
        )
        for status, count in sorted(sizes.notifications.items()):
            notifications.add_metric([status], count)
        yield notifications
        if self.audit:
            yield from _audit_metrics(totals)


def _audit_metrics(totals: AuditTotals) -> Iterator[Metric]:
    from datetime import UTC

    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    messages = CounterMetricFamily(
        "email2ticket_audit_messages",
        "Messages in the audit trail, by action and exit status",
        labels=["action", "exit_code"],
    )
    for (action, code), count in sorted(totals.messages.items()):
        messages.add_metric([action, str(code)], count)
    yield messages
    if totals.last_received is not None:
        when = totals.last_received
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when  # SQLite keeps no zone: the column is UTC
        last = GaugeMetricFamily(
            "email2ticket_audit_last_received_timestamp_seconds", "When the newest recorded message arrived"
        )
        last.add_metric([], when.timestamp())
        yield last


def write_textfile(config: Config, path: str) -> bool:
    """Write the metrics to `path` for node-exporter's textfile collector (atomically: a temporary file renamed
    over it); False when the database could not be read (the file then says email2ticket_database_up 0)."""
    from prometheus_client import CollectorRegistry, write_to_textfile

    collector = DatabaseCollector(config, who="email2ticket metrics", audit=True)
    registry = CollectorRegistry()
    registry.register(collector)
    write_to_textfile(path, registry)
    return collector.up
