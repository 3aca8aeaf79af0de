"""Where the two executables are, the clean environment the tests run them in, and a delivery started in the
background (for tests that kill it, feed it slowly or run many at once).

This module imports nothing from pytest, so a benchmark can import it with
``sys.path.insert(0, "<repo>/tests")``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ADMIN = REPO / "bin" / "email2ticket"
DELIVER = REPO / "bin" / "email2ticket-deliver"


def child_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """PATH, HOME and PYTHONPATH=<repo>/lib (so the working tree is what runs), nothing else from outside."""
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home), "PYTHONPATH": str(REPO / "lib")}
    env.update(extra or {})
    return env


def start_deliver(
    home: Path, *args: str, stdin: bytes | None = None, stdout: Any = subprocess.PIPE, stderr: Any = subprocess.PIPE
) -> subprocess.Popen[bytes]:
    """bin/email2ticket-deliver started and not waited for; ``stdin`` given is written and closed at once."""
    process = subprocess.Popen(
        [sys.executable, str(DELIVER), *args],
        stdin=subprocess.PIPE,
        stdout=stdout,
        stderr=stderr,
        env=child_env(home),
    )
    if stdin is not None:
        assert process.stdin is not None
        process.stdin.write(stdin)
        process.stdin.close()
    return process
