"""Prometheus metrics of the resident service (`[service] metrics`), scraped from the real service's endpoint
after real deliveries and read with prometheus_client's own text parser: what an admin's Prometheus sees."""

from __future__ import annotations

import socket
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from support.desk import Desk
from support.mail import mail
from support.servers.delivery_service import StartService
from support.servers.relay import wait_for

HELPDESK = "helpdesk@helpdesk.example"
Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def scrape(port: int) -> Samples:
    """Every sample on the endpoint: name -> {sorted labels: value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        text = response.read().decode()
    samples: Samples = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_the_service_serves_its_metrics(
    sqlite_url: str, run_admin: Any, run_deliver: Any, child_home: Path, start_service: StartService
) -> None:
    port, relay = _free_port(), _free_port()  # nothing listens on `relay`: every acknowledgement fails
    settings = {
        "max_message_bytes": 5000,
        "logging": {"target": "none"},
        "service": {"metrics": f"127.0.0.1:{port}", "retry_interval": 0},
        "notifications": {
            "from_address": f"Help Desk <{HELPDESK}>",
            "method": "smtp",
            "smtp_port": relay,
            "timeout": 5,
            "key_file": str(child_home / "keys" / "notification-keys"),
        },
    }
    desk = Desk(sqlite_url, run_admin, run_deliver, config=child_home / "e2t.toml", settings=settings, init=True)
    service = start_service(sqlite_url, config=desk.config, home=child_home, workers=2)
    assert wait_for(lambda: f"metrics on http://127.0.0.1:{port}/metrics" in service.log_text(), 30)
    (revision,) = desk.sql("SELECT version_num FROM alembic_version")[0]

    def send(raw: bytes, sender: str = "alice@example.com") -> int:
        with service.lmtp() as lmtp:  # a connection each: both workers take their share
            [(code, _text)] = lmtp.send(raw, sender, [HELPDESK])
        return code

    first = mail("Printer 0", message_id="<p0@example.com>")
    assert send(first) == 250
    assert send(first) == 250  # the same message again: a duplicate
    for n in (1, 2):  # other senders: no per-sender limit on acknowledgements applies
        assert send(mail(f"Printer {n}", sender=f"s{n}@example.com"), f"s{n}@example.com") == 250
    # The three acknowledgements fail at the relay after their deliveries: let them settle before the schema
    # goes away below, or a sender thread still holding one finds no schema and leaves it pending.
    assert wait_for(lambda: len(desk.sql("SELECT id FROM notifications WHERE status = 'failed'")) == 3, 30), (
        desk.sql("SELECT status, kind, recipient FROM notifications"),
        service.log_text(),
    )
    assert send(mail("Huge", body=("x" * 70 + "\n") * 100)) == 552  # over max_message_bytes: 65
    desk.sql("DELETE FROM alembic_version")  # the schema is gone as far as deliveries can tell: 75
    assert send(mail("While the schema is missing")) == 451
    desk.sql("INSERT INTO alembic_version (version_num) VALUES (:revision)", revision=revision)
    desk.sql("UPDATE messages SET action = 'quarantine' WHERE subject = 'Printer 2'")  # as repeated crashes leave it

    assert wait_for(lambda: len(desk.sql("SELECT id FROM notifications WHERE status = 'failed'")) == 3, 30), (
        desk.sql("SELECT status, kind, recipient FROM notifications"),
        service.log_text(),
    )
    metrics = scrape(port)
    messages = {dict(labels)["action"] + "/" + dict(labels)["exit_code"]: value for labels, value in
                metrics["email2ticket_messages_total"].items()}  # fmt: skip
    assert messages == {"create/0": 3, "duplicate/0": 1, "none/65": 1, "none/75": 1}, messages
    assert metrics["email2ticket_delivery_seconds_count"][()] == 6
    assert 0 < metrics["email2ticket_delivery_seconds_sum"][()] < 60
    assert metrics["email2ticket_delivery_seconds_bucket"][(("le", "+Inf"),)] == 6
    assert metrics["email2ticket_database_errors_total"][()] == 1
    assert metrics["email2ticket_service_in_flight"][()] == 0
    assert metrics["email2ticket_database_up"][()] == 1
    assert metrics["email2ticket_quarantine_messages"][()] == 1
    notifications = {dict(labels)["status"]: value for labels, value in metrics["email2ticket_notifications"].items()}
    assert notifications == {"pending": 0, "failed": 3, "given_up": 0, "bounced": 0}, notifications
