"""Private by default, and no database made up from a typo, through the real executables.

The SQLite database (and the -wal and -shm files SQLite adds), its directory, the delivery log and the key
file are created readable by their owner only, by delivery and by `init` alike. Only the built-in default
data directory ($XDG_DATA_HOME/email2ticket, else ~/.local/share/email2ticket) is ever created; a database
URL given explicitly whose directory does not exist defers (75) with a sentence naming it, and creates
nothing. A path this user cannot write is one line, never a traceback.
"""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support.executables import DELIVER, child_env
from support.mail import MAIL, mail
from support.servers.delivery_service import StartService
from support.unprivileged import other_user, powerless

NEW = (MAIL / "new_ticket.eml").read_bytes()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("entrance", ["deliver", "init"])
def test_the_default_data_directory_and_everything_in_it_are_private(
    run_deliver: Any, run_admin: Any, child_home: Path, entrance: str
) -> None:
    data = child_home / ".local" / "share" / "email2ticket"
    if entrance == "deliver":
        assert run_deliver(stdin=NEW).returncode == 0
    else:
        assert run_admin("init").returncode == 0
        assert mode(data / "notification-keys") == 0o600
    assert mode(data) == 0o700
    assert mode(data / "email2ticket.db") == 0o600
    assert all(mode(path) == 0o600 for path in data.glob("email2ticket.db*")), list(data.iterdir())
    # $XDG_DATA_HOME moves it.
    xdg = child_home / "xdg"
    result = run_deliver("--json", stdin=NEW, env={"XDG_DATA_HOME": str(xdg)})
    assert result.returncode == 0 and result.json["action"] == "create", result
    assert mode(xdg / "email2ticket") == 0o700 and mode(xdg / "email2ticket" / "email2ticket.db") == 0o600


def test_an_explicit_database_its_wal_and_the_log_are_private(
    sqlite_url: str, run_deliver: Any, start_service: StartService, tmp_path: Path
) -> None:
    log = tmp_path / "logs" / "deliver.log"
    log.parent.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(f'[logging]\ntarget = "file"\nfile = "{log}"\n')
    service = start_service(sqlite_url, config=config)  # holds its connections open: the -wal and -shm stay
    with service.lmtp() as lmtp:
        assert lmtp.send(NEW, "alice@example.com", ["helpdesk@helpdesk.example"])[0][0] == 250
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    files = {path.name: mode(path) for path in database.parent.glob("email2ticket.db*")}
    assert {"email2ticket.db", "email2ticket.db-wal", "email2ticket.db-shm"} <= set(files), files
    assert set(files.values()) == {0o600}, files
    assert mode(log) == 0o600


@pytest.mark.parametrize("given_by", ["--database-url", "environment", "configuration file"])
def test_an_explicit_database_in_a_missing_directory_defers_and_creates_nothing(
    run_deliver: Any, run_admin: Any, tmp_path: Path, child_home: Path, given_by: str
) -> None:
    missing = tmp_path / "no-such-directory"
    url = f"sqlite:///{missing}/email2ticket.db"
    args: tuple[str, ...] = ()
    env: dict[str, str] = {}
    if given_by == "--database-url":
        args = ("--database-url", url)
    elif given_by == "environment":
        env = {"EMAIL2TICKET_DATABASE_URL": url}
    else:
        config = tmp_path / "config.toml"
        config.write_text(f'database_url = "{url}"\n')
        args = ("--config", str(config))
    expected = f"4.3.5 the database directory {missing} does not exist: create it for the user that delivers"
    delivered = run_deliver(*args, stdin=NEW, env=env)
    assert (delivered.returncode, delivered.stderr_first_line[: len(expected)]) == (75, expected), delivered
    assert "Traceback" not in delivered.stderr_text
    initialised = run_admin(*args, "init", env=env)
    assert initialised.returncode == 75 and initialised.stderr_first_line.startswith(expected), initialised
    assert not missing.exists()
    assert not (child_home / ".local").exists()  # nor the default data directory, nor a key file in it


def test_an_unwritable_database_path_is_one_line(tmp_path: Path) -> None:
    """As a user who may not write there: the default data directory under a home it does not own, and an
    explicit database in a directory it does not own. Configuration errors, not internal errors: 75 with one
    sentence, no traceback, and nothing counted against the message."""
    import os

    owner = other_user()
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chown(home, owner.pw_uid, owner.pw_gid)

    def deliver(*args: str) -> subprocess.CompletedProcess[bytes]:
        argv = powerless([sys.executable, str(DELIVER), *args])
        return subprocess.run(argv, input=mail(), capture_output=True, env=child_env(home), cwd="/", check=False)

    result = deliver()
    data = home / ".local" / "share" / "email2ticket"
    assert result.returncode == 75, result
    lines = result.stderr.decode().splitlines()
    assert lines == [
        f"4.3.5 cannot create the data directory {data} for the default SQLite database: Permission denied; "
        "set database_url to a database this user can write"
    ], result
    result = deliver("--database-url", f"sqlite:///{home}/desk.db")
    assert result.returncode == 75, result
    assert result.stderr.decode().splitlines() == [
        f"4.3.5 cannot create the SQLite database {home}/desk.db: Permission denied; the user that delivers must be "
        f"able to write in {home}"
    ], result
