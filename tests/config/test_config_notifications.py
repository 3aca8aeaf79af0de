"""The [notifications] section: defaults, derived values, and every way of getting it wrong (ConfigurationError)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from email2ticket.config.load import config_from_mapping, parse_config_file
from email2ticket.config.model import Config, NotificationsConfig
from email2ticket.exits import ConfigurationError, ExitCode

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "config.toml"


def notifications(**settings: Any) -> NotificationsConfig:
    return config_from_mapping({"notifications": settings}).notifications


def test_without_the_section_nothing_is_sent() -> None:
    config = config_from_mapping({})
    assert config.notifications == NotificationsConfig()
    assert not config.notifications.enabled
    assert config.notifications.domain() is None
    assert config.notifications.loop_id() is None
    assert config.notifications.envelope_from() is None
    assert Config().notifications == NotificationsConfig()


def test_from_address_turns_notifications_on_and_names_domain_loop_and_envelope() -> None:
    settings = notifications(from_address="Help Desk <HelpDesk@Example.ORG>")
    assert settings.enabled
    assert settings.method == "sendmail"
    assert settings.address() == "HelpDesk@Example.ORG"
    assert settings.domain() == "example.org"
    assert settings.loop_id() == "example.org"
    assert settings.envelope_from() == "HelpDesk@Example.ORG"


def test_method_off_keeps_the_identity_but_sends_nothing() -> None:
    settings = notifications(from_address="helpdesk@example.org", method="off")
    assert not settings.enabled
    assert settings.domain() == "example.org"


def test_every_key_is_read() -> None:
    settings = notifications(
        from_address='"Support, 2nd level" <support@example.org>',
        method="smtp",
        sendmail="/usr/lib/sendmail",
        smtp_host="::1",
        smtp_port=2525,
        timeout=3,
        message_id_domain="Tickets.Example.org",
        instance_id="helpdesk-prod-1",
        key_file="/etc/email2ticket/notification-keys",
        previous_keys=0,
        templates="~/templates",
        bounce_address="bounces@example.org",
    )
    assert settings == NotificationsConfig(
        from_address='"Support, 2nd level" <support@example.org>',
        method="smtp",
        sendmail="/usr/lib/sendmail",
        smtp_host="::1",
        smtp_port=2525,
        timeout=3.0,
        message_id_domain="tickets.example.org",
        instance_id="helpdesk-prod-1",
        key_file="/etc/email2ticket/notification-keys",
        previous_keys=0,
        templates="~/templates",
        bounce_address="bounces@example.org",
    )
    assert settings.domain() == "tickets.example.org"
    assert settings.loop_id() == "helpdesk-prod-1"
    assert settings.envelope_from() == "bounces@example.org"
    assert settings.key_path() == Path("/etc/email2ticket/notification-keys")


def test_the_null_sender_is_an_empty_envelope_sender() -> None:
    assert notifications(from_address="helpdesk@example.org", bounce_address="<>").envelope_from() == ""


def test_key_path_defaults_to_the_user_data_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert NotificationsConfig().key_path() == tmp_path / "data" / "email2ticket" / "notification-keys"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert NotificationsConfig(key_file="~/keys").key_path() == tmp_path / "keys"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"from_addres": "x@example.org"}, "unknown setting notifications.from_addres"),
        ({"from_address": "helpdesk"}, "notifications.from_address must be one address"),
        ({"from_address": "helpdesk@"}, "notifications.from_address must be one address"),
        ({"from_address": "a@example.org, b@example.org"}, "notifications.from_address must be one address"),
        ({"from_address": "Help Desk <help desk@example.org>"}, "notifications.from_address must be one address"),
        ({"from_address": "hülfe@example.org"}, "notifications.from_address must be one address"),
        ({"from_address": "a@example.org\nBcc: victim@example.net"}, "notifications.from_address must be a non-empty"),
        ({"from_address": ""}, "notifications.from_address must be a non-empty"),
        ({"from_address": 42}, "notifications.from_address must be a non-empty"),
        ({"method": "smtps"}, "notifications.method must be one of sendmail, smtp, off"),
        ({"smtp_port": 0}, "notifications.smtp_port must be a port number from 1 to 65535"),
        ({"smtp_port": 65536}, "notifications.smtp_port"),
        ({"smtp_port": "25"}, "notifications.smtp_port"),
        ({"smtp_port": True}, "notifications.smtp_port"),
        ({"timeout": 0}, "notifications.timeout must be a positive number of seconds"),
        ({"timeout": -1.5}, "notifications.timeout"),
        ({"previous_keys": -1}, "notifications.previous_keys must be an integer, 0 or more"),
        ({"previous_keys": 1.5}, "notifications.previous_keys"),
        ({"message_id_domain": "help desk.example.org"}, "notifications.message_id_domain must be a domain"),
        ({"message_id_domain": "a@b"}, "notifications.message_id_domain"),
        ({"instance_id": "two words"}, "notifications.instance_id must be printable ASCII"),
        ({"bounce_address": "Bounces <bounces@example.org>"}, "notifications.bounce_address must be a bare address"),
        ({"key_file": "keys"}, "notifications.key_file must be an absolute path"),
        ({"templates": "templates/"}, "notifications.templates must be an absolute path"),
        ({"sendmail": "sendmail"}, "notifications.sendmail must be an absolute path"),
    ],
)
def test_invalid_settings_are_configuration_errors(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        config_from_mapping({"notifications": settings})
    assert raised.value.reason.startswith(message), raised.value.reason
    assert raised.value.exit_code == ExitCode.TEMPFAIL  # the MTA keeps the mail while the admin fixes it


def test_the_section_must_be_a_table() -> None:
    with pytest.raises(ConfigurationError, match=r"\[notifications\] must be a table"):
        config_from_mapping({"notifications": "on"})


def test_an_error_in_a_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[notifications]\nfrom_address = "helpdesk@example.org"\nmethod = "pigeon"\n')
    with pytest.raises(ConfigurationError) as raised:
        parse_config_file(path)
    assert raised.value.reason == f"configuration file {path}: notifications.method must be one of sendmail, smtp, off"


def test_the_example_configuration_is_valid_and_shows_the_defaults() -> None:
    config = parse_config_file(EXAMPLE)
    assert config.notifications == NotificationsConfig()
    assert "[notifications]" in EXAMPLE.read_text()
