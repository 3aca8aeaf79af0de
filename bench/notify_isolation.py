"""Outgoing mail must never slow incoming mail: a burst of new tickets through the resident service, with the
acknowledgements going to an SMTP relay that accepts connections and never answers, beside the same burst
without notifications.

Each of the --messages new tickets (default 100, distinct senders, 5 KB) is piped by the thin client to
`email2ticket serve` (PostgreSQL, 4 delivery threads), --senders at a time, as an MTA would. The two
configurations take turns, --rounds times each (a shared machine's load drifts), each round on a fresh
database and service. Printed per configuration, over all its rounds: the exit statuses, the latency per
message (median, 95th percentile, maximum), messages per second, and what became of the acknowledgements
right after the burst. It starts its own PostgreSQL
(tests/support/servers/pgserver.py), services (tests/support/servers/delivery_service.py) and hung relay
(tests/support/servers/relay.py).

    python bench/notify_isolation.py [--messages N] [--senders N] [--rounds N] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from support.executables import ADMIN, DELIVER, child_env  # noqa: E402
from support.servers.delivery_service import ServiceProcess  # noqa: E402
from support.servers.pgserver import PgServer  # noqa: E402
from support.servers.relay import StallingRelay  # noqa: E402

HELPDESK = "helpdesk@helpdesk.example"
LINE = "The VPN drops every few minutes since this morning; the log of the client is below.\n"


@dataclass(frozen=True)
class Burst:
    """One configuration's burst: exit statuses and latencies, and the acknowledgements afterwards."""

    name: str
    codes: Counter[int]
    latencies: list[float]
    wall: float
    notifications: dict[str, int]
    relay_connections: int | None

    def row(self) -> str:
        ordered = sorted(self.latencies)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        codes = ", ".join(f"{count} x {code}" for code, count in sorted(self.codes.items()))
        notes = ", ".join(f"{count} {status}" for status, count in sorted(self.notifications.items())) or "-"
        relay = "" if self.relay_connections is None else f" (relay: {self.relay_connections} connections)"
        return (
            f"| {self.name} | {codes} | {statistics.median(ordered) * 1000:.0f} ms | {p95 * 1000:.0f} ms | "
            f"{ordered[-1] * 1000:.0f} ms | {len(ordered) / self.wall:.0f} | {notes}{relay} |"
        )


def message(n: int) -> bytes:
    sender = f"requester{n}@example.com"
    return (
        f"Return-Path: <{sender}>\nFrom: {sender}\nTo: {HELPDESK}\nSubject: VPN drops, case {n}\n"
        f"Message-ID: <isolation-{n}@bench.example>\nDate: Thu, 26 Nov 2026 11:40:00 +0000\n"
        "Content-Type: text/plain; charset=utf-8\n\n" + LINE * (5000 // len(LINE))
    ).encode()


def run(argv: list[str], home: Path, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, input=data, capture_output=True, env=child_env(home), check=False)


def burst(
    name: str, url: str, config: Path, home: Path, args: argparse.Namespace, relay: StallingRelay | None
) -> Burst:
    admin = [sys.executable, str(ADMIN), "--config", str(config), "--database-url", url]
    init = run([*admin, "init"], home)
    assert init.returncode == 0, init.stderr
    connections = relay.connections if relay is not None else 0
    with ServiceProcess(url, config=config, home=home, threads=4) as service:
        pipe = [sys.executable, "-IS", str(DELIVER), "--config", str(config), "--database-url", url]
        pipe += ["--socket", str(service.socket), "--fallback", "tempfail", "--recipient", HELPDESK]

        def one(n: int) -> tuple[int, float]:
            started = time.monotonic()
            result = run(pipe, home, message(n))
            return result.returncode, time.monotonic() - started

        started = time.monotonic()
        with ThreadPoolExecutor(args.senders) as pool:
            results = list(pool.map(one, range(args.messages)))
        wall = time.monotonic() - started
        listed = run([*admin, "notifications", "list", "--limit", str(args.messages * 2), "--json"], home)
    statuses = Counter(row["status"] for row in json.loads(listed.stdout or b"[]"))
    return Burst(
        name,
        Counter(code for code, _ in results),
        [took for _, took in results],
        wall,
        dict(statuses),
        relay.connections - connections if relay is not None else None,
    )


def combined(bursts: list[Burst]) -> Burst:
    """One configuration's rounds as one row: every message's status and latency, the last round's notifications."""
    codes: Counter[int] = Counter()
    for one in bursts:
        codes.update(one.codes)
    latencies = [took for one in bursts for took in one.latencies]
    last = bursts[-1]
    wall = sum(one.wall for one in bursts)
    return Burst(last.name, codes, latencies, wall, last.notifications, last.relay_connections)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--senders", type=int, default=8, help="concurrent pipe deliveries (default 8)")
    parser.add_argument("--rounds", type=int, default=2, help="bursts per configuration, taking turns (default 2)")
    parser.add_argument("--timeout", type=float, default=10.0, help="notifications.timeout (default 10)")
    args = parser.parse_args()
    rounds: list[Burst] = []
    with PgServer() as pg, tempfile.TemporaryDirectory(prefix="e2t-bench-") as directory, StallingRelay() as relay:
        home = Path(directory)
        quiet = home / "quiet.toml"
        quiet.write_text('[logging]\ntarget = "none"\n')
        hung = home / "hung.toml"
        hung.write_text(
            '[logging]\ntarget = "none"\n[notifications]\n'
            f'from_address = "Help Desk <{HELPDESK}>"\nmethod = "smtp"\nsmtp_host = "{relay.host}"\n'
            f'smtp_port = {relay.port}\ntimeout = {args.timeout}\nkey_file = "{home / "notification-keys"}"\n'
        )
        for _ in range(args.rounds):
            rounds.append(burst("no notifications", pg.url_for(pg.create_database()), quiet, home, args, None))
            rounds.append(burst("relay never answers", pg.url_for(pg.create_database()), hung, home, args, relay))
    rows = [combined([r for r in rounds if r.name == name]) for name in ("no notifications", "relay never answers")]
    print(
        f"{args.messages} new tickets through pipe + service (PostgreSQL, 4 threads), {args.senders} at a time, "
        f"{args.rounds} round(s) each; notifications.timeout = {args.timeout:g} s; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n"
    )
    print("| configuration | exit statuses | median | p95 | max | messages/s | acknowledgements afterwards |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(row.row())
    return 0


if __name__ == "__main__":
    sys.exit(main())
