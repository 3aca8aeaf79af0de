"""Instructions executed by the standalone pipe against its floor, counted by valgrind (deterministic).

Issue #11 asks that the standalone pipe (`bin/email2ticket-deliver` without a service) costs at most 1.5x
its floor, `python -c "import sqlalchemy, email.parser, email.policy"` on SQLite. bench/delivery.py
measures that as wall and CPU time, which is what a user sees; but on a shared machine (2 cores, other
builds running) those times move by 10-20% from run to run, more than most changes to the pipe's start-up
are worth. The number of instructions a process executes does not depend on the load: valgrind's
callgrind counts them ("I refs"), and with PYTHONHASHSEED=0 the same code gives the same count to within
a fraction of a percent. So this script complements bench/delivery.py's times (it does not replace
them: instructions are not cycles, cache misses and the kernel's work are not counted): it tells
whether a change made the pipe cheaper, and by how much, with one run of each.

It prints the instruction counts of the floor, of a standalone delivery of a new ticket and of a reply
to an existing ticket (5 KB single-part messages like bench/delivery.py's), on SQLite, and their ratios
to the floor. The database is prepared outside the measurement: `email2ticket init`, then one new ticket
and one reply, so the schema exists (the first delivery to a fresh SQLite file would create it through
Alembic), the reply has a ticket to refer to, and the bytecode caches are written.

    python bench/pipe_instructions.py [--before REV]

--before REV also measures revision REV, in a git worktree created for the purpose (`git worktree add
--detach`) and removed afterwards, and prints both side by side. Each tree is run through its own
bin/ (the shim puts its own ../lib first on sys.path); the floor, which imports nothing of the package,
is measured once. Each figure takes about 20-60 s of CPU under valgrind.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
HELPDESK = "helpdesk@helpdesk.example"
FLOOR = [PY, "-c", "import sqlalchemy, email.parser, email.policy"]
VALGRIND = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
LINE = "The printer on the second floor shows error 50.4 again after this morning's power cut.\n"
WORKTREE = Path("/tmp/pipe-before")


def mail(sender: str, subject: str, message_id: str, body: str) -> bytes:
    """A 5 KB plain-text message as bench/delivery.py builds them."""
    headers = (
        f"Return-Path: <{sender}>\nReceived: from mx.example.com by mail.helpdesk.example (Postfix) id 4F2A1C\n"
        f"From: {sender}\nTo: {HELPDESK}\nSubject: {subject}\nDate: Thu, 26 Nov 2026 11:40:00 +0000\n"
        f"Message-ID: <{message_id}>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n\n"
    )
    return (headers + body).encode()


def new_ticket(n: int) -> tuple[bytes, str]:
    sender = f"user{n}@example.com"
    body = LINE * (5000 // len(LINE))
    return mail(sender, f"Printer problem number {n} on floor two", f"new-{n}@bench.example", body), sender


def reply(n: int) -> tuple[bytes, str]:
    """A reply to ticket #1, opened by requester1 (see Tree.prepare)."""
    sender = "requester1@example.com"
    quoted = "".join(f"> {LINE}" for _ in range(30))
    body = "Thanks, it works again.\n\nAlice\n\n-----Original Message-----\nFrom: Help Desk\n\n" + quoted
    body += LINE * max(0, (5000 - len(body)) // len(LINE))
    return mail(sender, "RE: Printer problem 1 [Ticket #1]", f"re-{n}@bench.example", body), sender


def run(argv: Sequence[str], data: bytes, env: dict[str, str], what: str) -> str:
    """Run to completion; stderr (valgrind's summary) is returned; a failure ends the script."""
    proc = subprocess.run(argv, input=data, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed with {proc.returncode}: {err[-1500:]}")
    return err


def instructions(argv: Sequence[str], data: bytes, env: dict[str, str], what: str) -> int:
    """The "Collected" instruction count callgrind reports for the process."""
    err = run([*VALGRIND, *argv], data, env, what)
    found = re.search(r"Collected\s*:\s*(\d+)", err)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output for {what}: {err[-1500:]}")
    return int(found.group(1))


@dataclass
class Figures:
    floor: int
    new: int
    reply: int


class Tree:
    """A checkout whose bin/ is measured, with its own SQLite database in workdir."""

    def __init__(self, root: Path, workdir: Path, label: str) -> None:
        self.root = root
        self.label = label
        self.home = workdir / f"home-{label}"
        self.home.mkdir()
        self.config = workdir / f"config-{label}.toml"
        self.config.write_text('[logging]\ntarget = "none"\n')
        self.url = f"sqlite:///{workdir}/bench-{label}.db"
        self.env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": str(self.home),
            "PYTHONPATH": str(root / "lib"),
            "PYTHONHASHSEED": "0",
        }
        self.sent = 0

    def deliver_argv(self, sender: str) -> list[str]:
        args = ["--config", str(self.config), "--database-url", self.url, "--sender", sender, "--recipient", HELPDESK]
        return [PY, str(self.root / "bin" / "email2ticket-deliver"), *args]

    def message(self, kind: str) -> tuple[bytes, str]:
        self.sent += 1
        return new_ticket(self.sent) if kind == "new" else reply(self.sent)

    def prepare(self) -> None:
        """Schema, ticket #1 (from requester1) and the bytecode caches, all outside the measurement."""
        run([PY, str(self.root / "bin" / "email2ticket"), "--database-url", self.url, "init"], b"", self.env, "init")
        sender = "requester1@example.com"
        first = mail(sender, "Printer problem 1", "seed-1@bench.example", LINE)
        run(self.deliver_argv(sender), first, self.env, "first delivery")
        for kind in ("new", "reply"):
            raw, sender = self.message(kind)
            run(self.deliver_argv(sender), raw, self.env, f"warm-up delivery ({kind})")

    def measure(self, floor: int) -> Figures:
        counts = {}
        for kind in ("new", "reply"):
            raw, sender = self.message(kind)
            counts[kind] = instructions(self.deliver_argv(sender), raw, self.env, f"delivery ({kind}, {self.label})")
        return Figures(floor, counts["new"], counts["reply"])


@contextlib.contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """REV checked out in WORKTREE for the measurement's duration, removed afterwards."""
    if WORKTREE.exists():
        raise SystemExit(f"{WORKTREE} exists: remove it (git worktree remove --force {WORKTREE}) and retry")
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(WORKTREE), rev], check=True)
    try:
        yield WORKTREE
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(WORKTREE)], check=False)


def millions(count: int) -> str:
    return f"{count / 1e6:,.0f} M"


def report(columns: list[tuple[str, Figures]]) -> None:
    rows = [("", *(label for label, _ in columns))]
    rows.append(("floor (import sqlalchemy, email)", *(millions(f.floor) for _, f in columns)))
    for name, attr in (("new ticket", "new"), ("reply", "reply")):
        rows.append((f"standalone pipe, {name}", *(millions(getattr(f, attr)) for _, f in columns)))
        rows.append(("  ratio to the floor", *(f"{getattr(f, attr) / f.floor:.3f}x" for _, f in columns)))
    mean = [(f.new + f.reply) / 2 / f.floor for _, f in columns]
    rows.append(("mean ratio (half new, half replies)", *(f"{value:.3f}x" for value in mean)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        print("  ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="REV", help="also measure this git revision (in a temporary worktree)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    columns: list[tuple[str, Figures]] = []
    with tempfile.TemporaryDirectory(prefix="pipe-instructions-") as tmp:
        workdir = Path(tmp)
        after = Tree(REPO, workdir, "after")
        after.prepare()  # also proves the working tree delivers before anything is measured
        floor = instructions(FLOOR, b"", after.env, "floor")  # the same interpreter and imports for every tree
        if args.before:
            with worktree(args.before) as root:
                before = Tree(root, workdir, "before")
                before.prepare()
                columns.append((f"before ({args.before})", before.measure(floor)))
        columns.append(("working tree" if args.before else "", after.measure(floor)))
    report(columns)


if __name__ == "__main__":
    main()
