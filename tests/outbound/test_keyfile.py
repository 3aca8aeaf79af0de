"""The HMAC key file: created private, re-runnable init, rotation, and refusing a file others can read."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from email2ticket.config.model import NotificationsConfig
from email2ticket.exits import ConfigurationError
from email2ticket.outbound.keys import (
    KeyFileMissing,
    create_keyring,
    describe_keyring,
    keyring_for,
    load_keyring,
    read_entries,
    rotate_keyring,
)
from email2ticket.signals.tokens import make_message_id, ticket_from_message_id


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "email2ticket" / "notification-keys"


def test_init_creates_a_private_file_in_a_private_directory(key_path: Path) -> None:
    keyring = create_keyring(key_path)
    assert len(keyring.keys) == 1
    assert len(keyring.newest.secret) == 32
    assert mode(key_path) == 0o600
    assert mode(key_path.parent) == 0o700
    assert [p.name for p in key_path.parent.iterdir()] == ["notification-keys"]  # no temporary file left
    assert load_keyring(key_path, previous_keys=2) == keyring


def test_init_ignores_a_permissive_umask(key_path: Path) -> None:
    old = os.umask(0o000)
    try:
        create_keyring(key_path)
    finally:
        os.umask(old)
    assert mode(key_path) == 0o600
    assert mode(key_path.parent) == 0o700


def test_an_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    create_keyring(tmp_path / "keys")
    assert mode(tmp_path) == 0o755


def test_init_is_re_runnable_and_keeps_the_keys(key_path: Path) -> None:
    first = create_keyring(key_path)
    text = key_path.read_bytes()
    assert create_keyring(key_path) == first
    assert key_path.read_bytes() == text


def test_the_file_format_is_commented_text_newest_first(key_path: Path) -> None:
    keyring = create_keyring(key_path)
    lines = key_path.read_text().splitlines()
    assert lines[0].startswith("# ")
    kid, secret, created = lines[1].split(" ")
    assert kid == keyring.newest.kid
    assert base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4)) == keyring.newest.secret
    assert created.endswith("+00:00")


def test_rotation_puts_a_new_key_first_and_keeps_previous_ones(key_path: Path) -> None:
    first = create_keyring(key_path).newest
    old_token = make_message_id(7, load_keyring(key_path, 2), "example.org")
    second = rotate_keyring(key_path, keep_previous=2)
    assert second.keys[1:] == (first,)
    assert mode(key_path) == 0o600
    third = rotate_keyring(key_path, keep_previous=2)
    fourth = rotate_keyring(key_path, keep_previous=2)
    assert [key.kid for key in fourth.keys] == [fourth.newest.kid, third.newest.kid, second.newest.kid]
    assert len({key.kid for key in fourth.keys} | {first.kid}) == 4  # every key is a new one
    assert load_keyring(key_path, previous_keys=5) == fourth  # the first key is gone from the file
    assert ticket_from_message_id(old_token, load_keyring(key_path, 5)) is None
    assert [p.name for p in key_path.parent.iterdir()] == ["notification-keys"]


def test_a_token_made_before_rotation_still_verifies(key_path: Path) -> None:
    create_keyring(key_path)
    token = make_message_id(42, load_keyring(key_path, 2), "example.org")
    rotate_keyring(key_path, keep_previous=2)
    keyring = load_keyring(key_path, previous_keys=2)
    assert ticket_from_message_id(token, keyring) == 42
    assert ticket_from_message_id(make_message_id(43, keyring, "example.org"), keyring) == 43
    assert ticket_from_message_id(token, load_keyring(key_path, previous_keys=0)) is None


def test_previous_keys_limits_what_verifies(key_path: Path) -> None:
    create_keyring(key_path)
    for _ in range(3):
        rotate_keyring(key_path, keep_previous=5)
    assert len(read_entries(key_path)) == 4
    assert len(load_keyring(key_path, previous_keys=0).keys) == 1
    assert len(load_keyring(key_path, previous_keys=2).keys) == 3
    assert len(load_keyring(key_path, previous_keys=9).keys) == 4
    assert rotate_keyring(key_path, keep_previous=0).keys == load_keyring(key_path, 9).keys
    assert len(read_entries(key_path)) == 1


def test_rotation_keeps_a_group_readable_mode(key_path: Path) -> None:
    create_keyring(key_path)
    key_path.chmod(0o640)
    rotate_keyring(key_path, keep_previous=1)
    assert mode(key_path) == 0o640


def test_rotating_through_a_symlink_rotates_the_target(tmp_path: Path, key_path: Path) -> None:
    create_keyring(key_path)
    link = tmp_path / "link"
    link.symlink_to(key_path)
    rotated = rotate_keyring(link, keep_previous=1)
    assert link.is_symlink()
    assert load_keyring(key_path, 1) == rotated


def test_a_missing_file_says_to_run_init(key_path: Path) -> None:
    with pytest.raises(KeyFileMissing) as raised:
        load_keyring(key_path, 2)
    assert raised.value.reason == (
        f"notification key file {key_path} does not exist: run `email2ticket init` as the help desk's user"
    )
    with pytest.raises(KeyFileMissing):
        rotate_keyring(key_path, 2)


@pytest.mark.parametrize("permissions", [0o604, 0o644, 0o602, 0o601, 0o666])
def test_a_file_other_users_can_access_is_refused(key_path: Path, permissions: int) -> None:
    create_keyring(key_path)
    key_path.chmod(permissions)
    with pytest.raises(ConfigurationError) as raised:
        load_keyring(key_path, 2)
    assert raised.value.reason == (
        f"notification key file {key_path} is accessible by other users (mode {permissions:04o}): chmod 600 {key_path}"
    )
    with pytest.raises(ConfigurationError, match="chmod 600"):
        create_keyring(key_path)  # re-running init points at the problem instead of hiding it


def test_group_access_is_allowed(key_path: Path) -> None:
    keyring = create_keyring(key_path)
    key_path.chmod(0o640)
    assert load_keyring(key_path, 2) == keyring


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_a_clear_error(key_path: Path) -> None:
    create_keyring(key_path)
    key_path.chmod(0o000)
    with pytest.raises(ConfigurationError, match=r"^cannot read notification key file .*: Permission denied$"):
        load_keyring(key_path, 2)


def test_a_directory_or_a_fifo_is_not_a_key_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="is not a regular file"):
        load_keyring(tmp_path, 2)
    os.mkfifo(tmp_path / "fifo", 0o600)
    with pytest.raises(ConfigurationError, match="is not a regular file"):
        load_keyring(tmp_path / "fifo", 2)  # refused at once: opening it does not wait for a writer


GOOD_SECRET = base64.urlsafe_b64encode(b"s" * 32).decode().rstrip("=")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no key"),
        ("# only a comment\n\n", "holds no key"),
        (f"k1 {GOOD_SECRET}\n", "line 1: expected `<key id> <secret> <created>`"),
        (f"# c\nK1 {GOOD_SECRET} 2026-01-01T00:00:00+00:00\n", "line 2: key id 'K1' is not 1-16 lower-case"),
        ("k1 not*base64 2026-01-01T00:00:00+00:00\n", "line 1: the secret of key k1 is not urlsafe base64"),
        ("k1 c2hvcnQ 2026-01-01T00:00:00+00:00\n", "line 1: the secret of key k1 is shorter than 16 bytes"),
        (f"k1 {GOOD_SECRET} yesterday\n", "line 1: the creation date of key k1 is not an ISO 8601 date"),
        (f"k1 {GOOD_SECRET} 2026-01-01\nk1 {GOOD_SECRET} 2025-01-01\n", "a key id appears twice"),
        ("k1 \u00e9\u00e9\u00e9 2026-01-01\n", "is not a key file (not ASCII text)"),
    ],
)
def test_a_malformed_file_is_refused(key_path: Path, text: str, message: str) -> None:
    key_path.parent.mkdir(parents=True)
    key_path.write_text(text, encoding="utf-8")
    key_path.chmod(0o600)
    with pytest.raises(ConfigurationError) as raised:
        load_keyring(key_path, 2)
    assert message in raised.value.reason
    assert raised.value.reason.startswith(f"notification key file {key_path}")
    assert "\n" not in raised.value.reason


def test_a_hand_written_file_loads(key_path: Path) -> None:
    key_path.parent.mkdir(parents=True)
    key_path.write_text(
        f"# mine\n\nk2 {GOOD_SECRET} 2026-02-01T00:00:00+00:00\n  # old\nk1 {GOOD_SECRET}== 2025-01-01\n"
    )
    key_path.chmod(0o600)
    keyring = load_keyring(key_path, 2)
    assert [key.kid for key in keyring.keys] == ["k2", "k1"]
    assert keyring.newest.secret == b"s" * 32


def test_keys_list_never_shows_a_secret(key_path: Path) -> None:
    create_keyring(key_path)
    rotate_keyring(key_path, keep_previous=3)
    rotate_keyring(key_path, keep_previous=3)
    lines = describe_keyring(key_path, previous_keys=1)
    entries = read_entries(key_path)
    assert [line.split()[0] for line in lines] == [entry.key.kid for entry in entries]
    assert lines[0].endswith("newest: signs new notifications")
    assert lines[1].endswith("previous: still verifies replies")
    assert "retired" in lines[2]
    output = "\n".join(lines)
    for entry in entries:
        assert entry.key.secret.hex() not in output
        assert base64.urlsafe_b64encode(entry.key.secret).decode().rstrip("=") not in output
        assert repr(entry.key) == f"Key(kid={entry.key.kid!r}, secret=<32 bytes>)"
    assert all(" created 20" in line for line in lines)


def test_keyring_for_follows_the_configuration(key_path: Path) -> None:
    off = NotificationsConfig(key_file=str(key_path))
    on = NotificationsConfig(from_address="helpdesk@example.org", key_file=str(key_path))
    assert keyring_for(off) is None
    with pytest.raises(KeyFileMissing, match="run `email2ticket init`"):
        keyring_for(on)
    keyring = create_keyring(key_path)
    assert keyring_for(on) == keyring
    assert keyring_for(off) == keyring  # replies to mail sent before notifications were switched off
    key_path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        keyring_for(off)


def test_keyring_for_uses_previous_keys(key_path: Path) -> None:
    create_keyring(key_path)
    rotate_keyring(key_path, keep_previous=2)
    config = NotificationsConfig(from_address="helpdesk@example.org", key_file=str(key_path), previous_keys=0)
    keyring = keyring_for(config)
    assert keyring is not None and len(keyring.keys) == 1
