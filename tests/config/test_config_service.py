"""The [service] settings of the operable service: `retry_interval` (the notification retry timer) and `metrics`
(the Prometheus endpoint, loopback only); and what a SIGHUP reload may change (service/reload.py merge)."""

from __future__ import annotations

from typing import Any

import pytest
from msgspec.structs import replace

from email2ticket.config.load import config_from_mapping
from email2ticket.config.model import ServiceConfig
from email2ticket.exits import ConfigurationError
from email2ticket.service.reload import merge


def service(**settings: Any) -> ServiceConfig:
    return config_from_mapping({"service": settings}).service


def test_defaults_retry_every_minute_and_serve_no_metrics() -> None:
    assert (service().retry_interval, service().metrics) == (60.0, None)
    assert service(retry_interval=0).retry_interval == 0
    assert service(retry_interval=2.5).retry_interval == 2.5
    assert service(metrics="127.0.0.1:9464").metrics == "127.0.0.1:9464"
    assert service(metrics="[::1]:9464").metrics == "[::1]:9464"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"retry_interval": 0.5}, "service.retry_interval must be 0 (off) or a number of seconds from 1 to 86400"),
        ({"retry_interval": True}, "service.retry_interval must be"),
        ({"retry_interval": "60"}, "service.retry_interval must be"),
        ({"metrics": "0.0.0.0:9464"}, "metrics are served on loopback only"),
        ({"metrics": "192.0.2.1:9464"}, "metrics are served on loopback only"),
        ({"metrics": "unix:/run/m.sock"}, 'service.metrics must be a loopback "HOST:PORT"'),
        ({"metrics": 9464}, 'service.metrics must be a loopback "HOST:PORT"'),
        ({"metrics": "127.0.0.1"}, "is not unix:/PATH, HOST:PORT"),
    ],
)
def test_wrong_values_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        service(**settings)
    assert message in refused.value.reason


def test_a_reload_takes_everything_but_what_needs_a_restart() -> None:
    started = config_from_mapping({"database_url": "sqlite:////a.db", "service": {"socket": "/run/a.sock"}})
    running = replace(started, service=replace(started.service, threads=8))  # --threads 8 on the command line
    fresh = config_from_mapping(
        {
            "database_url": "sqlite:////b.db",
            "max_message_bytes": 1000,
            "service": {"socket": "/run/b.sock", "threads": 2, "retry_interval": 5},
        }
    )
    merged, restart = merge(running, started, fresh)
    assert merged.max_message_bytes == 1000 and merged.service.retry_interval == 5
    assert (merged.database_url, merged.service.socket, merged.service.threads) == ("sqlite:////a.db", "/run/a.sock", 8)
    assert restart == ["database_url", "service.socket", "service.threads"]
    assert merge(running, started, started)[1] == []
