"""Delivery speed: standalone pipe, thin client + resident service, and LMTP, against the issue's targets.

One command prints one table, everything measured in the same run on this machine:

* the floors: `python -c "import sqlalchemy, psycopg, email.parser, email.policy"` (PostgreSQL),
  the same without psycopg (SQLite), and `python -IS -c "import sys; sys.stdin.buffer.read()"` (the
  thin client's floor), each spawned alternately with what it is the floor of, because the floor
  drifts between runs on a shared machine;
* standalone delivery on SQLite and PostgreSQL, the thin client with `email2ticket serve`, and LMTP:
  median wall time per message, and throughput with 1, 4, 8 and 20 concurrent senders (pipe
  processes, or LMTP sessions), 5 KB single-part messages from distinct senders, half new tickets and
  half replies to existing tickets;
* peak RSS of a client, of a standalone delivery, and of the service after 1,000 and 10,000 messages;
* one 25 MB message: time and peak RSS, standalone and through the service.

Each throughput figure is the median of --repeat runs. It starts its own PostgreSQL (tests/support/servers/pgserver.py,
fsync off: the database's own durability cost is not what is measured) and its own services
(tests/support/servers/delivery_service.py). The pipe is run as the MTA would with the service: `python -IS
bin/email2ticket-deliver` (the checkout's shim finds the package without `site`).

    python bench/delivery.py [--quick] [--repeat N] [--profile]

--profile records the LMTP service at 8 sessions with py-spy and prints where its time goes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from support.executables import ADMIN, DELIVER, child_env  # noqa: E402
from support.servers.delivery_service import LmtpClient, ServiceProcess  # noqa: E402
from support.servers.pgserver import PgServer  # noqa: E402

PY = sys.executable
HELPDESK = "helpdesk@helpdesk.example"
CONCURRENCY = (1, 4, 8, 20)
SEEDED = 200  # existing tickets that replies refer to, each from its own requester
FLOOR_PG = [PY, "-c", "import sqlalchemy, psycopg, email.parser, email.policy"]
FLOOR_SQLITE = [PY, "-c", "import sqlalchemy, email.parser, email.policy"]
FLOOR_CLIENT = [PY, "-IS", "-c", "import sys; sys.stdin.buffer.read()"]
PIPE_FAST = [PY, "-IS", str(DELIVER)]
PIPE = [PY, str(DELIVER)]


# --- messages ----------------------------------------------------------------------------------------

_counter = iter(range(10**9))
_lock = threading.Lock()


def _next() -> int:
    with _lock:
        return next(_counter)


LINE = "The printer on the second floor shows error 50.4 again after this morning's power cut.\n"


def new_ticket() -> tuple[bytes, str]:
    n = _next()
    sender = f"user{n}@example.com"
    body = LINE * (5000 // len(LINE))
    return _mail(sender, f"Printer problem number {n} on floor two", f"new-{n}@bench.example", body), sender


def reply() -> tuple[bytes, str]:
    n, ticket = _next(), _next() % SEEDED + 1
    sender = f"requester{ticket}@example.com"
    quoted = "".join(f"> {LINE}" for _ in range(30))
    body = "Thanks, it works again.\n\nAlice\n\n-----Original Message-----\nFrom: Help Desk\n\n" + quoted
    body += LINE * max(0, (5000 - len(body)) // len(LINE))
    subject = f"RE: Printer problem {ticket} [Ticket #{ticket}]"
    return _mail(sender, subject, f"re-{n}@bench.example", body), sender


def mixed() -> tuple[bytes, str]:
    """Half new tickets, half replies, alternating."""
    return new_ticket() if _next() % 2 else reply()


def _mail(sender: str, subject: str, message_id: str, body: str) -> bytes:
    headers = (
        f"Return-Path: <{sender}>\nReceived: from mx.example.com by mail.helpdesk.example (Postfix) id 4F2A1C\n"
        f"From: {sender}\nTo: {HELPDESK}\nSubject: {subject}\nDate: Thu, 26 Nov 2026 11:40:00 +0000\n"
        f"Message-ID: <{message_id}>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n\n"
    )
    return (headers + body).encode()


def big_message(size: int) -> tuple[bytes, str]:
    n = _next()
    sender = f"big{n}@example.com"
    return _mail(sender, "Huge log file", f"big-{n}@bench.example", LINE * (size // len(LINE))), sender


# --- running processes -------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    code: int
    cpu: float  # the child's user + system time
    stderr: bytes = b""


def spawn(argv: Sequence[str], data: bytes, env: dict[str, str]) -> Run:
    """Spawn, feed stdin, wait; wall time and the child's own CPU time (wait4)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert proc.stdin is not None and proc.stderr is not None
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.write(data)
    proc.stdin.close()
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(time.perf_counter() - started, proc.returncode, usage.ru_utime + usage.ru_stime, err)


TIME = "/usr/bin/time"


def peak_rss_mb(argv: Sequence[str], data: bytes, env: dict[str, str]) -> float | None:
    """The command's own peak RSS, through GNU time: wait4's ru_maxrss for a child spawned from this
    process would count this (large) process's pages that the child had before it exec'd."""
    if not os.access(TIME, os.X_OK):
        return None
    with tempfile.NamedTemporaryFile("r") as output:
        checked(spawn([TIME, "-f", "%M", "-o", output.name, *argv], data, env), "peak RSS run")
        return int(output.read().split()[-1]) / 1024


def process_cpu(pid: int) -> float:
    """User + system seconds of a process and its live children (pre-forked workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rpartition(")")[2].split()
            if int(stat.parent.name) == pid or int(fields[1]) == pid:
                total += (int(fields[11]) + int(fields[12])) / tick
    return total


def checked(run: Run, what: str) -> Run:
    if run.code != 0:
        raise SystemExit(f"{what} failed with {run.code}: {run.stderr.decode(errors='replace')[:500]}")
    return run


def alternate(subject: Callable[[], Run], floor: Callable[[], Run], n: int) -> tuple[list[Run], list[Run]]:
    """Run subject and floor alternately n times each (the floor drifts; alternating cancels it)."""
    subjects, floors = [], []
    for _ in range(n):
        subjects.append(subject())
        floors.append(floor())
    return subjects, floors


def throughput(send: Callable[[], object], senders: int, total: int) -> float:
    """Messages per second with `senders` concurrent senders sharing `total` messages."""
    remaining = iter(range(total))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if next(remaining, None) is None:
                    return
            send()

    started = time.perf_counter()
    with ThreadPoolExecutor(senders) as pool:
        for future in [pool.submit(worker) for _ in range(senders)]:
            future.result()
    return total / (time.perf_counter() - started)


# --- results -----------------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    median_ms: float | None = None
    rates: dict[int, float] = field(default_factory=dict)
    extra: str = ""
    target: str = ""
    verdict: str = ""


class Table:
    def __init__(self) -> None:
        self.rows: list[Row] = []

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(f"  {row.name}: {self.cells(row)}", file=sys.stderr, flush=True)
        return row

    @staticmethod
    def cells(row: Row) -> str:
        median = f"{row.median_ms:.1f} ms" if row.median_ms is not None else ""
        rates = " ".join(f"{row.rates[c]:.0f}" if c in row.rates else "-" for c in CONCURRENCY) if row.rates else ""
        return " | ".join((median, rates, row.extra, row.target, row.verdict))

    def print(self) -> None:
        header = ("measurement", "median/msg", "msg/s @ " + "/".join(map(str, CONCURRENCY)), "other", "target", "")
        lines = [header]
        for row in self.rows:
            median = f"{row.median_ms:.1f} ms" if row.median_ms is not None else ""
            rates = (
                " / ".join(f"{row.rates[c]:.0f}" if c in row.rates else "-" for c in CONCURRENCY) if row.rates else ""
            )
            lines.append((row.name, median, rates, row.extra, row.target, row.verdict))
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        for index, line in enumerate(lines):
            print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
            if index == 0:
                print("  ".join("-" * width for width in widths))


def verdict(ok: bool, gap: str = "") -> str:
    return "met" if ok else f"MISSED {gap}".rstrip()


def median_ms(runs: list[Run]) -> float:
    return statistics.median(run.seconds for run in runs) * 1000


def cpu_ratio(runs: list[Run], floors: list[Run]) -> float:
    """CPU time against the floor's: unlike wall time, hardly moved by other load on the machine."""
    return statistics.median(run.cpu for run in runs) / max(statistics.median(run.cpu for run in floors), 1e-6)


def mb(value: float | None) -> str:
    return f"{value:.1f} MB" if value is not None else "n/a (no /usr/bin/time)"


# --- the measurements ---------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, pg: PgServer, workdir: Path) -> None:
        self.args = args
        self.pg = pg
        self.workdir = workdir
        self.home = workdir / "home"
        self.home.mkdir()
        self.env = child_env(self.home)
        self.config = workdir / "config.toml"
        self.config.write_text('[logging]\ntarget = "none"\n')
        self.table = Table()
        self.quick = args.quick
        self.services: list[ServiceProcess] = []

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def database(self, kind: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{self.workdir}/bench-{_next()}.db"
        return self.pg.url_for(self.pg.create_database())

    def init(self, url: str) -> str:
        checked(spawn([PY, str(ADMIN), "--database-url", url, "init"], b"", self.env), "init")
        return url

    def seed(self, service: ServiceProcess) -> None:
        """The tickets replies refer to: ticket k opened by requester k."""
        with service.lmtp() as lmtp:
            for k in range(1, SEEDED + 1):
                raw = _mail(f"requester{k}@example.com", f"Printer problem {k}", f"seed-{k}@bench.example", LINE)
                [(code, text)] = lmtp.send(raw, f"requester{k}@example.com", [HELPDESK])
                assert code == 250 and f"ticket #{k}" in text, (code, text)

    def service(self, url: str, **kwargs: object) -> ServiceProcess:
        service = ServiceProcess(url, config=self.config, home=self.home, **kwargs)  # type: ignore[arg-type]
        self.services.append(service)
        return service.start()

    def close(self) -> None:
        for service in self.services:
            service.close()

    def pipe_args(self, url: str, sender: str, socket: Path | None = None) -> list[str]:
        args = ["--config", str(self.config), "--database-url", url, "--sender", sender, "--recipient", HELPDESK]
        if socket is not None:
            args += ["--socket", str(socket), "--fallback", "tempfail"]
        return args

    # -- rows --

    def floors_and_standalone(self, kind: str) -> None:
        url = self.database(kind)
        service = self.service(self.init(url))  # only to seed the tickets the replies refer to
        self.seed(service)
        service.close()
        floor_argv = FLOOR_PG if kind == "postgresql" else FLOOR_SQLITE

        def deliver() -> Run:
            raw, sender = mixed()
            return checked(spawn(PIPE + self.pipe_args(url, sender), raw, self.env), "standalone delivery")

        runs, floors = alternate(deliver, lambda: checked(spawn(floor_argv, b"", self.env), "floor"), self.n(15, 5))
        raw, sender = mixed()
        rss = peak_rss_mb(PIPE + self.pipe_args(url, sender), raw, self.env)
        floor = median_ms(floors)
        self.table.add(
            Row(f"floor: python -c 'import sqlalchemy{', psycopg' if kind == 'postgresql' else ''}, email'", floor)
        )
        ratio = median_ms(runs) / floor
        row = Row(
            f"standalone pipe, {kind}",
            median_ms(runs),
            extra=f"{ratio:.2f}x floor (CPU {cpu_ratio(runs, floors):.2f}x); peak RSS {mb(rss)}",
            target="<= 1.5x floor",
            verdict=verdict(ratio <= 1.5, f"by {ratio / 1.5 - 1:.0%}"),
        )
        for senders in CONCURRENCY:
            row.rates[senders] = self.rate(deliver, senders, self.n(max(16, 2 * senders), 8))
        self.table.add(row)

    def rate(self, send: Callable[[], object], senders: int, total: int) -> float:
        return statistics.median(throughput(send, senders, total) for _ in range(self.args.repeat))

    def thin_client(self, kind: str) -> None:
        url = self.init(self.database(kind))
        service = self.service(url)
        try:
            self.seed(service)

            def deliver() -> Run:
                raw, sender = mixed()
                argv = PIPE_FAST + self.pipe_args(url, sender, service.socket)
                return checked(spawn(argv, raw, self.env), "client delivery")

            def floor() -> Run:
                raw, _sender = mixed()
                return checked(spawn(FLOOR_CLIENT, raw, self.env), "floor")

            cpu_before, count = process_cpu(service.pid), self.n(40, 10)
            runs, floors = alternate(deliver, floor, count)
            service_cpu = (process_cpu(service.pid) - cpu_before) / count * 1000
            self.table.add(Row("floor: python -IS -c 'sys.stdin.buffer.read()'", median_ms(floors)))
            ratio = median_ms(runs) / median_ms(floors)
            raw, sender = mixed()
            rss = peak_rss_mb(PIPE_FAST + self.pipe_args(url, sender, service.socket), raw, self.env) or 0.0
            row = Row(
                f"thin client + service, {kind}",
                median_ms(runs),
                extra=f"{ratio:.2f}x floor (client CPU {cpu_ratio(runs, floors):.2f}x); client peak RSS {rss:.1f} MB;"
                f" service CPU {service_cpu:.1f} ms/msg",
                target="<= 2x floor; >= 100 msg/s @ 8 (PostgreSQL); client RSS < 10 MB",
            )
            for senders in CONCURRENCY:
                row.rates[senders] = self.rate(deliver, senders, self.n(200, 40))
            ok = ratio <= 2 and rss < 10 and (kind != "postgresql" or row.rates[8] >= 100)
            gaps = []
            if ratio > 2:
                gaps.append(f"median {ratio / 2 - 1:.0%} over")
            if kind == "postgresql" and row.rates[8] < 100:
                gaps.append(f"@8 {1 - row.rates[8] / 100:.0%} short")
            if rss >= 10:
                gaps.append(f"RSS {rss:.1f} MB")
            row.verdict = verdict(ok, ", ".join(gaps))
            self.table.add(row)
            self.table.add(Row(f"  service RSS after the pipe runs, {kind}", extra=f"{rss_mb(service):.0f} MB"))
        finally:
            service.close()

    def lmtp(self, kind: str, workers: int = 1) -> None:
        url = self.init(self.database(kind))
        service = self.service(url, workers=workers)
        profiler = None
        try:
            self.seed(service)
            sessions: dict[int, LmtpClient] = {}  # one LMTP session per sender thread
            latencies: list[float] = []

            def send() -> None:
                raw, sender = mixed()
                client = sessions.get(threading.get_ident()) or sessions.setdefault(
                    threading.get_ident(), service.lmtp()
                )
                started = time.perf_counter()
                [(code, text)] = client.send(raw, sender, [HELPDESK])
                latencies.append(time.perf_counter() - started)
                if code != 250:
                    raise SystemExit(f"LMTP delivery failed: {code} {text}")

            cpu_before, count = process_cpu(service.pid), self.n(100, 30)
            for _ in range(count):
                send()
            median = statistics.median(latencies) * 1000
            cpu = (process_cpu(service.pid) - cpu_before) / count * 1000
            row = Row(f"LMTP, {kind}, {workers} process(es)", median, extra=f"service CPU {cpu:.1f} ms/msg")
            for senders in CONCURRENCY:
                if senders == 8 and workers == 1 and kind == "postgresql" and self.args.profile:
                    profiler = start_profile(service, self.workdir)
                latencies.clear()
                row.rates[senders] = self.rate(send, senders, self.n(1500, 300))
                if senders == 8:
                    at8 = statistics.median(latencies) * 1000
                    row.extra += f"; latency @8 {at8:.1f} ms"
                for client in sessions.values():
                    client.close()
                sessions.clear()
                if profiler is not None:
                    print_profile(profiler)
                    profiler = None
            goal = 400 if workers > 1 else 250
            if kind == "postgresql":
                row.target = f">= {goal} msg/s @ 8" + ("" if workers > 1 else "; latency < 30 ms")
                ok = row.rates[8] >= goal and median < 30
                row.verdict = verdict(ok, f"@8 {1 - row.rates[8] / goal:.0%} short" if row.rates[8] < goal else "")
            self.table.add(row)
        finally:
            if profiler is not None:
                profiler.kill()
            service.close()

    def service_memory(self) -> None:
        """Service RSS after 1,000 and 10,000 messages (LMTP, 8 sessions), and the growth between."""
        url = self.init(self.database("postgresql"))
        service = self.service(url)
        try:
            self.seed(service)
            sent = 0
            marks: dict[int, float] = {}

            def run_to(count: int) -> None:
                nonlocal sent
                clients: dict[int, LmtpClient] = {}

                def send() -> None:
                    client = clients.setdefault(threading.get_ident(), service.lmtp())
                    raw, sender = mixed()
                    [(code, _text)] = client.send(raw, sender, [HELPDESK])
                    assert code == 250

                throughput(send, 8, count - sent)
                for client in clients.values():
                    client.close()
                sent = count

            for mark in (1000, self.n(10_000, 3000)):
                run_to(mark)
                marks[mark] = rss_mb(service)
            first, last = marks.values()
            growth = last / first - 1
            self.table.add(
                Row(
                    "service RSS after 1,000 / " + f"{sent:,} messages",
                    extra=f"{first:.0f} MB / {last:.0f} MB (growth {growth:+.1%})",
                    target="< 80 MB; growth < 10%",
                    verdict=verdict(last < 80 and growth < 0.10, f"{last:.0f} MB, {growth:+.1%}"),
                )
            )
        finally:
            service.close()

    def big(self, kind: str) -> None:
        size = 25 * 1024 * 1024
        config = self.workdir / "big.toml"
        config.write_text('max_message_bytes = 52428800\n[logging]\ntarget = "none"\n')
        url = self.init(self.database(kind))
        raw, sender = big_message(size)
        args = ["--config", str(config), "--database-url", url, "--sender", sender, "--recipient", HELPDESK]
        alone = checked(spawn(PIPE + args, raw, self.env), "25 MB standalone")
        raw, sender = big_message(size)
        args[args.index("--sender") + 1] = sender
        rss = peak_rss_mb(PIPE + args, raw, self.env) or 0.0
        ratio = rss * 1024 * 1024 / size
        self.table.add(
            Row(
                f"25 MB message, standalone, {kind}",
                alone.seconds * 1000,
                extra=f"peak RSS {rss:.0f} MB = {ratio:.1f}x size",
                target="<= 10x size",
                verdict=verdict(ratio <= 10, f"{ratio:.1f}x"),
            )
        )
        service = ServiceProcess(url, config=config, home=self.home)
        self.services.append(service)
        service.start()
        try:
            before = hwm_mb(service)
            raw, sender = big_message(size)
            args = ["--config", str(config), "--database-url", url, "--sender", sender, "--recipient", HELPDESK]
            args += ["--socket", str(service.socket), "--fallback", "tempfail"]
            client = checked(spawn(PIPE_FAST + args, raw, self.env), "25 MB via service")
            growth = hwm_mb(service) - before
            ratio = growth * 1024 * 1024 / size
            raw, sender = big_message(size)
            args[args.index("--sender") + 1] = sender
            client_rss = peak_rss_mb(PIPE_FAST + args, raw, self.env) or 0.0
            self.table.add(
                Row(
                    f"25 MB message, thin client + service, {kind}",
                    client.seconds * 1000,
                    extra=f"service peak +{growth:.0f} MB = {ratio:.1f}x size; client {client_rss:.1f} MB",
                    target="<= 10x size; client < 10 MB",
                    verdict=verdict(ratio <= 10 and client_rss < 10, f"{ratio:.1f}x, client {client_rss:.1f} MB"),
                )
            )
        finally:
            service.close()


def _status(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mb(service: ServiceProcess) -> float:
    return _status(service.pid, "VmRSS")


def hwm_mb(service: ServiceProcess) -> float:
    return _status(service.pid, "VmHWM")


# --- profiling ---------------------------------------------------------------------------------------


@dataclass
class Profiler:
    proc: subprocess.Popen[bytes]
    output: Path

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))


def start_profile(service: ServiceProcess, workdir: Path) -> Profiler | None:
    output = workdir / "profile.txt"
    try:
        proc = subprocess.Popen(
            [PY_SPY, "record", "--pid", str(service.pid), "--format", "raw", "--output", str(output),
             "--rate", "250", "--threads", "--gil", "--duration", "10"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
    except FileNotFoundError:
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return None
    time.sleep(1.0)
    return Profiler(proc, output)


def print_profile(profiler: Profiler) -> None:
    """Where the service's CPU went (samples of the thread holding the GIL): the event loop thread
    (protocol, hand-off) against the delivery threads, then self time by package and by function."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        profiler.proc.wait(60)
    profiler.kill()
    if not profiler.output.exists():
        print("(py-spy produced no profile)")
        return
    areas: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in profiler.output.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame for frame in stack.split(";") if not frame.startswith(("thread (", "process "))]
        total += count
        leaves[frames[-1]] += count
        threads["delivery threads" if "delivery_" in stack else "event loop (LMTP, hand-off)"] += count
        areas[_area(frames[-1])] += count
    if not total:
        return
    print(f"\npy-spy --gil, service at 8 LMTP sessions: {total} samples holding the GIL")
    for thread, count in threads.most_common():
        print(f"  {count / total:6.1%}  {thread}")
    print("self time per package")
    for area, count in areas.most_common(12):
        print(f"  {count / total:6.1%}  {area}")
    print("top leaf functions (self time)")
    for leaf, count in leaves.most_common(15):
        print(f"  {count / total:6.1%}  {leaf}")
    print()


def _area(frame: str) -> str:
    """The package a py-spy frame ("function (package/module.py:line)") belongs to."""
    path = frame[frame.find("(") + 1 : frame.rfind(")")].rpartition(":")[0]
    for prefix, area in (
        ("sqlalchemy/", "sqlalchemy"),
        ("psycopg/", "psycopg"),
        ("aiosmtpd/", "aiosmtpd"),
        ("email/", "stdlib email"),
        ("asyncio/", "asyncio"),
        ("concurrent/", "threads"),
        ("threading.py", "threads"),
    ):
        if path.startswith(prefix):
            return area
    if (REPO / "lib" / "email2ticket" / path).exists():
        return "email2ticket/" + (path.split("/")[0] + "/" if "/" in path else "")
    return "other"


# --- main --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres() -> Iterator[PgServer]:
    with PgServer() as server:
        yield server


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages (a smoke run, not for the record)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per throughput figure (median)")
    parser.add_argument("--profile", action="store_true", help="py-spy the LMTP service at 8 sessions")
    parser.add_argument("--only", nargs="*", help="standalone client lmtp memory big (default: all)")
    args = parser.parse_args(argv)
    # A plain SIGTERM would leave the PostgreSQL server and the services running: unwind instead.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(1))
    only = set(args.only or ("standalone", "client", "lmtp", "memory", "big"))
    print(
        f"email2ticket delivery benchmark on {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}", file=sys.stderr
    )
    with postgres() as pg, tempfile.TemporaryDirectory(prefix="e2t-bench-") as tmp:
        bench = Bench(args, pg, Path(tmp))
        try:
            run_all(bench, only)
        finally:
            bench.close()
        print()
        bench.table.print()
    return 0


def run_all(bench: Bench, only: set[str]) -> None:
    if "standalone" in only:
        bench.floors_and_standalone("sqlite")
        bench.floors_and_standalone("postgresql")
    if "client" in only:
        bench.thin_client("postgresql")
        bench.thin_client("sqlite")
    if "lmtp" in only:
        bench.lmtp("postgresql")
        bench.lmtp("postgresql", workers=2)
        bench.lmtp("sqlite")
    if "memory" in only:
        bench.service_memory()
    if "big" in only:
        bench.big("postgresql")


if __name__ == "__main__":
    sys.exit(main())
