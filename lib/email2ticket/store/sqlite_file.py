"""The SQLite database file and its directory: private from the start, and never made up from a typo.

SQLite creates a missing database file readable by every local user (0644 less the umask), and its -wal
and -shm files with the database file's mode. So before SQLite first opens a database, the file is
created here, empty (an empty file is an empty database) and 0600: the files SQLite adds beside it take
that mode, and nobody else reads the help desk's mail.

Only the built-in default data directory ($XDG_DATA_HOME/email2ticket, else ~/.local/share/email2ticket)
is ever created, 0700. A directory that a database URL names explicitly (database_url,
$EMAIL2TICKET_DATABASE_URL, --database-url) must exist: a typo there would otherwise send mail into a
fresh, empty database, so it is a configuration error (75, the mail waits) and nothing is created.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..exits import ConfigurationError


def prepare_database_file(path: Path) -> None:
    """Make sure `path` exists, created 0600 if it did not; ConfigurationError (one sentence) when it cannot."""
    if str(path).startswith("file:"):
        return  # an SQLite URI (?uri=true): SQLite itself reads what it names and how to open it
    directory = path.parent
    if not directory.is_dir():
        _create_default_directory(directory)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create the SQLite database {path}: {exc.strerror or exc}; the user that delivers must be "
            f"able to write in {directory}"
        ) from None
    os.close(fd)


def _create_default_directory(directory: Path) -> None:
    from ..config.model import default_data_directory

    if directory != default_data_directory():
        raise ConfigurationError(
            f"the database directory {directory} does not exist: create it for the user that delivers (or correct "
            "the database URL); nothing was created, so that a typo cannot start an empty database"
        )
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        directory.mkdir(mode=0o700)  # the umask can only take bits away
    except FileExistsError:
        pass  # a concurrent delivery made it
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create the data directory {directory} for the default SQLite database: {exc.strerror or exc}; "
            "set database_url to a database this user can write"
        ) from None
