"""The HMAC key file behind notification Message-ID tokens (signals/tokens.py): create, rotate, load, list.

`email2ticket init` creates the file, readable by the help desk's own user only; `keys rotate` puts a
new key first, so new tokens use it while the previous ones (as many as `previous_keys` allows) still
verify the replies to notifications already sent. The file is text, newest key first:

    # email2ticket notification keys, newest first: kid secret created. Keep this file secret.
    k1a2b3 q7Vx...(urlsafe base64 of 32 bytes) 2026-05-27T10:00:00+00:00

A key file readable or writable by "other" is refused, not merely warned about: whoever can read the
secret can mint tokens that steer mail into any ticket, and whoever can write it can replace it. The
file only ever appears complete and with its final mode (written to a private temporary file first,
then linked or renamed into place), so neither a concurrent delivery nor another user sees a partial
or an exposed file. Secrets never reach a log line: describe_keyring() prints ids and dates only.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import stat
from datetime import UTC, datetime
from pathlib import Path

from msgspec import Struct

from ..config.model import NotificationsConfig
from ..exits import ConfigurationError
from ..signals.tokens import Key, Keyring, new_key

HEADER = "# email2ticket notification keys, newest first: kid secret created. Keep this file secret (chmod 600).\n"
MIN_SECRET_BYTES = 16
_KID = re.compile(r"[a-z0-9]{1,16}")  # what signals/tokens.py accepts in a Message-ID


class KeyFileMissing(ConfigurationError):
    """The key file does not exist: fine while notifications are off, an error once they are on."""


class KeyEntry(Struct, frozen=True):
    """One line of the key file: the key and when it was made (the date is for `keys list` only)."""

    key: Key
    created: datetime


def create_keyring(path: Path) -> Keyring:
    """Create the key file with one new key; when it exists already, return its keys unchanged (init re-runs)."""
    try:
        return Keyring(tuple(entry.key for entry in read_entries(path)))
    except KeyFileMissing:
        pass
    _make_private_parent(path.parent)
    entries = (KeyEntry(new_key(), _now()),)
    temporary = _write_private(path, entries, like=None)
    try:
        os.link(temporary, path)  # unlike rename, never replaces a file another `init` created meanwhile
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigurationError(f"cannot create notification key file {path}: {exc.strerror or exc}") from exc
    finally:
        temporary.unlink(missing_ok=True)
    return Keyring(tuple(entry.key for entry in read_entries(path)))


def rotate_keyring(path: Path, keep_previous: int) -> Keyring:
    """Put a new key first and keep at most `keep_previous` older ones; the file is replaced atomically."""
    path = path.resolve()  # a symlinked key file is rotated where it lives, the link kept
    old = read_entries(path)
    entries = (KeyEntry(new_key(), _now()), *old[: max(0, keep_previous)])
    temporary = _write_private(path, entries, like=os.stat(path))
    try:
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ConfigurationError(f"cannot replace notification key file {path}: {exc.strerror or exc}") from exc
    return Keyring(tuple(entry.key for entry in entries))


def load_keyring(path: Path, previous_keys: int) -> Keyring:
    """The newest key and up to `previous_keys` older ones; ConfigurationError saying what to fix otherwise."""
    entries = read_entries(path)
    return Keyring(tuple(entry.key for entry in entries[: 1 + max(0, previous_keys)]))


def keyring_for(config: NotificationsConfig) -> Keyring | None:
    """The keyring deliveries verify tokens with: None only when there is no key file and nothing is sent.

    A key file that exists is loaded (and must be valid) even with notifications off, so replies to
    notifications sent before they were switched off still find their tickets.
    """
    try:
        return load_keyring(config.key_path(), config.previous_keys)
    except KeyFileMissing:
        if config.enabled:
            raise
        return None


def describe_keyring(path: Path, previous_keys: int) -> list[str]:
    """Lines for `email2ticket keys list`: id, creation date and role of each key; never the secret."""
    lines = []
    for index, entry in enumerate(read_entries(path)):
        if index == 0:
            role = "newest: signs new notifications"
        elif index <= previous_keys:
            role = "previous: still verifies replies"
        else:
            role = "retired: beyond notifications.previous_keys, verifies nothing"
        lines.append(f"{entry.key.kid}  created {entry.created.isoformat(timespec='seconds')}  {role}")
    return lines


def read_entries(path: Path) -> tuple[KeyEntry, ...]:
    """Every key in the file, newest first, after checking who may access it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO put there must not hang a delivery
    except FileNotFoundError:
        raise KeyFileMissing(
            f"notification key file {path} does not exist: run `email2ticket init` as the help desk's user"
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read notification key file {path}: {exc.strerror or exc}") from exc
    try:
        _check_access(path, os.fstat(fd))  # the file we read, not whatever the name points to by now
        data = _read_all(fd)
    except OSError as exc:
        raise ConfigurationError(f"cannot read notification key file {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ConfigurationError(f"notification key file {path} is not a key file (not ASCII text)") from None
    return parse_entries(text, str(path))


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def parse_entries(text: str, source: str) -> tuple[KeyEntry, ...]:
    """Parse the key file's text; any malformed line is a ConfigurationError naming file and line."""
    entries: list[KeyEntry] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            entries.append(_parse_line(line))
        except ValueError as exc:
            raise ConfigurationError(f"notification key file {source} line {number}: {exc}") from None
    if not entries:
        raise ConfigurationError(f"notification key file {source} holds no key: run `email2ticket keys rotate`")
    kids = [entry.key.kid for entry in entries]
    if len(set(kids)) != len(kids):
        raise ConfigurationError(f"notification key file {source}: a key id appears twice")
    return tuple(entries)


def format_entries(entries: tuple[KeyEntry, ...]) -> str:
    """The file's text for `entries`, newest first."""
    lines = (f"{e.key.kid} {_encode(e.key.secret)} {e.created.isoformat(timespec='seconds')}\n" for e in entries)
    return HEADER + "".join(lines)


def _parse_line(line: str) -> KeyEntry:
    fields = line.split()
    if len(fields) != 3:
        raise ValueError("expected `<key id> <secret> <created>`")
    kid, secret_text, created_text = fields
    if not _KID.fullmatch(kid):
        raise ValueError(f"key id {kid!r} is not 1-16 lower-case letters and digits")
    try:
        secret = base64.urlsafe_b64decode(secret_text.encode("ascii") + b"=" * (-len(secret_text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(f"the secret of key {kid} is not urlsafe base64") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the secret of key {kid} is shorter than {MIN_SECRET_BYTES} bytes")
    try:
        created = datetime.fromisoformat(created_text)
    except ValueError:
        raise ValueError(f"the creation date of key {kid} is not an ISO 8601 date") from None
    return KeyEntry(Key(kid=kid, secret=secret), created)


def _check_access(path: Path, status: os.stat_result) -> None:
    if not stat.S_ISREG(status.st_mode):
        raise ConfigurationError(f"notification key file {path} is not a regular file")
    if status.st_mode & 0o007:
        mode = stat.S_IMODE(status.st_mode)
        raise ConfigurationError(
            f"notification key file {path} is accessible by other users (mode {mode:04o}): chmod 600 {path}"
        )


def _make_private_parent(directory: Path) -> None:
    """Create the key file's directory, 0700, when it does not exist; an existing one is left as it is."""
    if directory.is_dir():
        return
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        directory.mkdir(mode=0o700)  # the umask can only take bits away
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigurationError(f"cannot create directory {directory}: {exc.strerror or exc}") from exc


def _write_private(path: Path, entries: tuple[KeyEntry, ...], *, like: os.stat_result | None) -> Path:
    """Write `entries` to a new 0600 file beside `path` (mode, owner and group of `like` when given)."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ConfigurationError(f"cannot write beside {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            # Explicitly: the umask may have taken more than "other" away (0277 leaves the owner read-only).
            os.fchmod(handle.fileno(), stat.S_IMODE(like.st_mode) & 0o770 if like else 0o600)
            if like is not None:
                _keep_owner(handle.fileno(), like)
            handle.write(format_entries(entries).encode("ascii"))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ConfigurationError(f"cannot write notification key file {temporary}: {exc.strerror or exc}") from exc
    return temporary


def _keep_owner(fd: int, like: os.stat_result) -> None:
    """Give the new file the old one's owner and group: root rotating the help desk's file, or a group
    the admin chose so the MTA's pipe user may read it (group access is allowed, "other" is not)."""
    new = os.fstat(fd)
    if (new.st_uid, new.st_gid) != (like.st_uid, like.st_gid):
        try:
            os.fchown(fd, like.st_uid, like.st_gid)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot keep owner {like.st_uid} and group {like.st_gid}") from exc


def _encode(secret: bytes) -> str:
    return base64.urlsafe_b64encode(secret).decode("ascii").rstrip("=")


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
