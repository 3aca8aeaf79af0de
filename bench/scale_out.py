"""Scale-out: one service against two services (two "hosts") on one PostgreSQL, directly and behind PgBouncer.

One command prints one table, every figure measured in the same run on this machine: messages per second with
8 and 20 concurrent senders, through LMTP sessions and through the pipe's thin client (a process per message, as
Postfix's pipe transport runs it), for

* one service, straight to PostgreSQL (the figure bench/delivery.py reports too);
* one service behind PgBouncer (transaction pooling, `?pool_mode=transaction`): what the pooler costs;
* two services, straight to PostgreSQL: the senders take turns between them, as MX hosts do;
* two services behind one PgBouncer, with fewer server connections than the services have threads.

Each service runs `threads` delivery threads (the default, 4) in one process; messages are bench/delivery.py's
5 KB mix of new tickets and replies to seeded tickets. After each configuration the audit trail is counted: every
message sent is there exactly once, or the script says what was lost or doubled. PostgreSQL (fsync off) and
PgBouncer (Debian's, tests/support/servers/pgbouncer.py) are started by the script and stopped at the end.

    python bench/scale_out.py [--quick] [--repeat N] [--pool-size N]

On a machine with two cores, two services cannot go much faster than one: the figures say what a second host
costs and what PgBouncer costs, not what a second machine would add.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from delivery import (  # noqa: E402  (bench/delivery.py: the same messages and measuring)
    ADMIN,
    HELPDESK,
    LINE,
    PIPE_FAST,
    PY,
    SEEDED,
    _mail,
    checked,
    mixed,
    spawn,
    throughput,
)
from support.executables import child_env  # noqa: E402
from support.servers.delivery_service import LmtpClient, ServiceProcess  # noqa: E402
from support.servers.pgbouncer import PgBouncer  # noqa: E402
from support.servers.pgserver import PgServer  # noqa: E402

SENDERS = (8, 20)
TRANSPORTS = ("LMTP", "pipe")


@dataclass
class Setup:
    name: str
    services: int
    bouncer: bool


SETUPS = (
    Setup("1 service, direct", 1, False),
    Setup("1 service, PgBouncer", 1, True),
    Setup("2 services, direct", 2, False),
    Setup("2 services, PgBouncer", 2, True),
)


@dataclass
class Row:
    setup: Setup
    rates: dict[tuple[str, int], float] = field(default_factory=dict)
    server_connections: int = 0
    sent: int = 0
    stored: int = 0


class ScaleOut:
    def __init__(self, args: argparse.Namespace, pg: PgServer, bouncer: PgBouncer, workdir: Path) -> None:
        self.args, self.pg, self.bouncer, self.workdir = args, pg, bouncer, workdir
        self.home = workdir / "home"
        self.home.mkdir()
        self.env = child_env(self.home)
        self.config = workdir / "config.toml"
        self.config.write_text('[logging]\ntarget = "none"\n')
        self.services: list[ServiceProcess] = []

    def count(self, full: int, quick: int) -> int:
        return quick if self.args.quick else full

    def close(self) -> None:
        for service in self.services:
            service.close()

    def start_service(self, url: str) -> ServiceProcess:
        service = ServiceProcess(url, config=self.config, home=self.home, threads=self.args.threads)
        self.services.append(service)
        return service.start()

    def measure(self, setup: Setup) -> Row:
        database = self.pg.create_database()
        checked(spawn([PY, str(ADMIN), "--database-url", self.pg.url_for(database), "init"], b"", self.env), "init")
        url = self.bouncer.url_for(database) if setup.bouncer else self.pg.url_for(database)
        services = [self.start_service(url) for _ in range(setup.services)]
        row = Row(setup)
        try:
            seed(services[0])
            for transport in TRANSPORTS:
                for senders in SENDERS:
                    total = self.count(400, 120) if transport == "LMTP" else self.count(120, 40)
                    rates = [self.run(transport, services, senders, total, row) for _ in range(self.args.repeat)]
                    row.rates[transport, senders] = statistics.median(rates)
                    print(
                        f"  {setup.name}, {transport} @ {senders}: {row.rates[transport, senders]:.0f} msg/s",
                        file=sys.stderr,
                        flush=True,
                    )
            row.server_connections = self.server_connections(database)
            row.stored = int(self.pg.execute("SELECT count(*) FROM messages", database=database)[0][0]) - SEEDED
        finally:
            for service in services:
                service.close()
        return row

    def run(self, transport: str, services: list[ServiceProcess], senders: int, total: int, row: Row) -> float:
        """Messages per second; sender thread k delivers to service k mod n (MX hosts taking turns)."""
        turns: dict[int, ServiceProcess] = {}
        sessions: dict[int, LmtpClient] = {}
        lock = threading.Lock()

        def service() -> ServiceProcess:
            ident = threading.get_ident()
            with lock:
                return turns.setdefault(ident, services[len(turns) % len(services)])

        def by_lmtp() -> None:
            raw, sender = mixed()
            client = sessions.get(threading.get_ident()) or sessions.setdefault(threading.get_ident(), service().lmtp())
            [(code, text)] = client.send(raw, sender, [HELPDESK])
            if code != 250:
                raise SystemExit(f"LMTP delivery failed: {code} {text}")

        def by_pipe() -> None:
            raw, sender = mixed()
            target = service()
            args = ["--config", str(self.config), "--database-url", target.database_url, "--sender", sender]
            args += ["--recipient", HELPDESK, "--socket", str(target.socket), "--fallback", "tempfail"]
            checked(spawn(PIPE_FAST + args, raw, self.env), "thin client delivery")

        send: Callable[[], None] = by_lmtp if transport == "LMTP" else by_pipe
        try:
            rate = throughput(send, senders, total)
        finally:
            for client in sessions.values():
                client.close()
        row.sent += total
        return rate

    def server_connections(self, database: str) -> int:
        """PostgreSQL's sessions on the database now: the services' pools, or PgBouncer's server connections."""
        rows = self.pg.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [database])
        return int(rows[0][0])


def seed(service: ServiceProcess) -> None:
    """The tickets the replies refer to: ticket k opened by requester k (as bench/delivery.py seeds them)."""
    with service.lmtp() as lmtp:
        for k in range(1, SEEDED + 1):
            raw = _mail(f"requester{k}@example.com", f"Printer problem {k}", f"seed-{k}@bench.example", LINE)
            [(code, text)] = lmtp.send(raw, f"requester{k}@example.com", [HELPDESK])
            assert code == 250 and f"ticket #{k}" in text, (code, text)


def print_table(rows: list[Row], pool_size: int, threads: int) -> None:
    header = ["setup", *(f"{t} @ {s}" for t in TRANSPORTS for s in SENDERS), "PostgreSQL sessions", "sent / stored"]
    lines = [header]
    for row in rows:
        rates = [f"{row.rates[t, s]:.0f}" for t in TRANSPORTS for s in SENDERS]
        check = f"{row.sent} / {row.stored}" + ("" if row.sent == row.stored else "  MISMATCH")
        lines.append([row.setup.name, *rates, str(row.server_connections), check])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    print(
        f"messages/s; each service {threads} threads; PgBouncer: pool_mode = transaction, {pool_size} server "
        "connection(s) per database"
    )
    for index, line in enumerate(lines):
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages (a smoke run, not for the record)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--threads", type=int, default=4, help="delivery threads per service (default 4)")
    parser.add_argument("--pool-size", type=int, default=4, help="PgBouncer's server connections per database")
    args = parser.parse_args(argv)
    # A plain SIGTERM would leave PostgreSQL, PgBouncer and the services running: unwind instead.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(1))
    started_load = os.getloadavg()[0]
    print(
        f"email2ticket scale-out benchmark on {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}", file=sys.stderr
    )
    with (
        PgServer() as pg,
        PgBouncer(pg, pool_size=args.pool_size) as bouncer,
        tempfile.TemporaryDirectory(prefix="e2t-scale-") as tmp,
    ):
        bench = ScaleOut(args, pg, bouncer, Path(tmp))
        try:
            rows = [bench.measure(setup) for setup in SETUPS]
        finally:
            bench.close()
    print()
    print_table(rows, args.pool_size, args.threads)
    # The machine may be shared: the load says how much of it this run had.
    print(f"load average at the start {started_load:.1f}, at the end {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    return 0 if all(row.sent == row.stored for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
