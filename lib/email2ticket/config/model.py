"""Infrastructure configuration: where the database is, how big a message may be, how long a delivery may take.

Rule settings (restrict_replies, separators, ...) live in the database so an admin can change them
without touching the MTA; this file holds only what the process needs before it can reach the
database. The TOML file is validated once into a frozen record: an unknown key is an error, because
a misspelt key silently ignored is a setting the admin believes is in force. Every error here is a
ConfigurationError, which the CLI turns into 75 so the MTA keeps the mail while the admin fixes it.
"""

from __future__ import annotations

from pathlib import Path

from msgspec import Struct, field

from .syntax import addr_spec

SYSTEM_CONFIG = Path("/etc/email2ticket/config.toml")
CONFIG_ENV = "EMAIL2TICKET_CONFIG"
DATABASE_URL_ENV = "EMAIL2TICKET_DATABASE_URL"
LOG_TARGETS = ("auto", "syslog", "file", "none")


class LoggingConfig(Struct, frozen=True):
    """Where the one-line-per-delivery log goes. Never stdout: Postfix reads it as our answer."""

    target: str = "auto"  # auto: syslog when /dev/log exists, else `file` when set, else nowhere
    file: str | None = None
    facility: str = "mail"


class DnsConfig(Struct, frozen=True):
    """How sender verification asks DNS for DKIM keys and DMARC records.

    Only a message whose sender's rights depend on a DKIM verification ever queries DNS. The budget
    covers every query of one delivery together, so a slow resolver costs at most that much before the
    message is deferred (75) or, when the answer does not matter, recorded and ignored.
    """

    resolvers: tuple[str, ...] = ()  # "IP" or "IP:PORT" ("[IPv6]:PORT"); empty: /etc/resolv.conf
    time_budget: float = 10.0  # seconds for all DNS queries of one delivery together


FALLBACKS = ("standalone", "tempfail")


class ServiceConfig(Struct, frozen=True):
    """The resident delivery service (`email2ticket serve`) and how the pipe command reaches it.

    The pipe command stays the MTA's interface; with `socket` set it hands each message to the
    service over that Unix socket instead of importing and connecting everything itself. `lmtp`
    lets Postfix deliver over LMTP with no process per message. `fallback` says what the pipe does
    when the service cannot be reached: deliver standalone (slower, never loses mail) or exit 75.

    Nobody but the owner and the group may reach the sockets (socket_mode never gives "other" any
    access). A loopback TCP port is open to every local user, so LMTP listens on one only with
    `lmtp_allow_tcp`, and trusts no Authentication-Results header that arrives there.
    """

    socket: str | None = None  # Unix socket for email2ticket-deliver; None: always standalone
    socket_mode: int = 0o660  # who may connect: the MTA's pipe user must be able to; never "other"
    socket_group: str | None = None  # group of the sockets (e.g. "postfix" for lmtp:unix:)
    lmtp: str | None = None  # "unix:/path", or "127.0.0.1:PORT" / "[::1]:PORT" with lmtp_allow_tcp
    lmtp_allow_tcp: bool = False  # accept that every local user can deliver over LMTP on loopback TCP
    user: str | None = None  # the service's user, when not root: the pipe trusts a socket it (or root) owns
    fallback: str = "standalone"  # "standalone" or "tempfail" when the service is unreachable
    workers: int = 1  # service processes (pre-forked, sharing the sockets)
    threads: int = 4  # concurrent deliveries (and database connections) per process
    # Seconds between the service's own rounds of notifications due for a retry (0: only deliveries retry them).
    retry_interval: float = 60.0
    metrics: str | None = None  # "127.0.0.1:PORT": Prometheus metrics on a loopback address; None: off


NOTIFY_METHODS = ("sendmail", "smtp", "off")
NULL_SENDER = "<>"


class NotificationsConfig(Struct, frozen=True):
    """How the help desk sends its own mail: acknowledgements and notifications (outbound/).

    Without `from_address` nothing is ever sent, and a missing key file is no error (outbound/keys.py), so an
    installation that does not want notifications needs no [notifications] section at all.
    """

    from_address: str | None = None  # "Help Desk <helpdesk@example.org>"; None: notifications are off
    method: str = "sendmail"  # "sendmail" | "smtp" | "off"
    sendmail: str = "/usr/sbin/sendmail"  # run as [sendmail, "-t", "-i", "-f", envelope_from]
    smtp_host: str = "127.0.0.1"  # a local relay: no TLS, no authentication
    smtp_port: int = 25
    timeout: float = 10.0  # seconds for all that one delivery sends, together (outbound/send.py)
    message_id_domain: str | None = None  # default: the domain of from_address
    instance_id: str | None = None  # value of our loop header; default: the Message-ID domain
    key_file: str | None = None  # default: <user data dir>/email2ticket/notification-keys
    previous_keys: int = 2  # after a rotation, how many previous keys still verify tokens
    templates: str | None = None  # a directory whose files override the built-in templates
    bounce_address: str | None = None  # envelope sender; "<>" is the null sender; default: from_address

    @property
    def enabled(self) -> bool:
        return self.from_address is not None and self.method != "off"

    def address(self) -> str | None:
        """The addr-spec of from_address (validated to have one, so only None when unset)."""
        return addr_spec(self.from_address) if self.from_address else None

    def domain(self) -> str | None:
        """The right-hand side of our Message-IDs: message_id_domain, else from_address's domain."""
        if self.message_id_domain:
            return self.message_id_domain
        address = self.address()
        return address.rpartition("@")[2].lower() if address else None

    def loop_id(self) -> str | None:
        """The value of our X-Email2ticket-Loop header, which tells our own mail coming back."""
        return self.instance_id or self.domain()

    def envelope_from(self) -> str | None:
        """The envelope sender (where bounces go): "" for the null sender, None when unset."""
        if self.bounce_address is not None:
            return "" if self.bounce_address == NULL_SENDER else self.bounce_address
        return self.address()

    def key_path(self) -> Path:
        """The HMAC key file: key_file, else `notification-keys` in the user's data directory."""
        if self.key_file:
            return Path(self.key_file).expanduser()
        return default_data_directory() / "notification-keys"


class Limits(Struct, frozen=True):
    """The structural limits of one message ([limits]): what the parser may be asked to build (mail/limits.py).

    A message over any of them is held for the admin, never turned into a ticket or bounced.
    """

    max_mime_parts: int = 1000
    max_mime_depth: int = 50
    max_header_count: int = 1000
    max_header_bytes: int = 1 << 20
    max_addresses_per_header: int = 1000
    max_attachments: int = 500


class Config(Struct, frozen=True):
    """Validated infrastructure settings; see examples/config.toml for each key's meaning."""

    database_url: str | None = None
    max_message_bytes: int = 50 * 1024 * 1024
    delivery_timeout: float = 60.0
    max_attempts: int = 5  # unexpected failures of one message before it is quarantined (delivery/quarantine.py)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    dns: DnsConfig = field(default_factory=DnsConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    limits: Limits = field(default_factory=Limits)
    source: str | None = None  # the file this came from, for error messages and `doctor`

    def resolved_database_url(self) -> str:
        """The URL to connect to; without one, the embedded SQLite file in the user's data directory."""
        return self.database_url or default_database_url()

    @property
    def lock_timeout(self) -> float:
        """Database lock/statement timeouts stay below the delivery budget, so we roll back ourselves."""
        return max(1.0, self.delivery_timeout * 0.75)


# Every default, for the loaders of the file's keys (a record's class attribute is not its default).
DEFAULTS = Config()


def default_database_url() -> str:
    """The embedded default: a SQLite file in the invoking user's data directory."""
    return f"sqlite:///{default_data_directory() / 'email2ticket.db'}"


def default_data_directory() -> Path:
    """$XDG_DATA_HOME/email2ticket, else ~/.local/share/email2ticket: the one directory email2ticket creates
    itself (0700), for the default database and key file."""
    from platformdirs import user_data_path  # only paid for when no database or key file is configured

    return user_data_path("email2ticket")
