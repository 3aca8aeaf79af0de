"""Message-ID tokens: how a notification we sent is recognised when it, or a reply to it, comes back.

Every notification's Message-ID carries an HMAC tag over the ticket number, made with the help desk's
secret key. A reply's In-Reply-To/References then names its ticket even when the subject lost the
number, and our own notification looping back (its OWN Message-ID carries a valid tag) is recognised
as ours. Nobody without the key can mint a token, so a forged References: cannot steer mail into an
arbitrary ticket.

    <e2t.42.k1a2b3.5f0c9e21d7aa.3b9d...(32 hex)@helpdesk.example.org>
         ticket key id  nonce        tag: HMAC-SHA256, first 128 bits

The key id names the key that made the tag, so keys can be rotated: new tokens use the newest key and
verification accepts the previous ones still in the keyring (outbound/keys.py keeps them). Tags are compared
in constant time. Pure functions, stdlib only: this runs on every delivery that has a keyring.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Iterable
from typing import TypeAlias

from msgspec import Struct

# The header every mail we send carries (its value: our instance id), so our own mail coming back is
# recognised (signals/classify.py) even where a relay rewrote its Message-ID.
LOOP_HEADER = "X-Email2ticket-Loop"
TAG_HEX = 32  # 128 bits of HMAC-SHA256 (at least 96 are required)
NONCE_HEX = 12
# Compiled on first use (re caches it): most mail carries nothing shaped like a token (may_be_token).
_TOKEN = r"^<?e2t\.(\d{1,12})\.([a-z0-9]{1,16})\.([0-9a-f]{8,32})\.([0-9a-f]{32,64})@[^>]+>?$"


class Key(Struct, frozen=True):
    """One HMAC key: a short public id (carried in tokens) and the secret."""

    kid: str
    secret: bytes

    def __repr__(self) -> str:  # never print a secret in a traceback or a log
        return f"Key(kid={self.kid!r}, secret=<{len(self.secret)} bytes>)"


class Keyring(Struct, frozen=True):
    """The keys in force, newest first: the first makes new tokens, all of them verify."""

    keys: tuple[Key, ...]

    @property
    def newest(self) -> Key:
        return self.keys[0]

    def find(self, kid: str) -> Key | None:
        return next((key for key in self.keys if key.kid == kid), None)


# The keyring, or a function that loads it on first need (outbound/keys.py: a file read per delivery saved).
KeyringSource: TypeAlias = Keyring | Callable[[], Keyring | None] | None
TOKEN_PREFIX = "<e2t."


def may_be_token(message_id: str) -> bool:
    """Could this be one of our tokens? A prefix test, before anything loads a key."""
    return message_id[: len(TOKEN_PREFIX)].lower() == TOKEN_PREFIX


def resolve_keyring(source: KeyringSource) -> Keyring | None:
    return source() if callable(source) else source


def new_key() -> Key:
    """A fresh random key: 256-bit secret, 6-hex-digit id."""
    import secrets  # only the admin's init and rotate make keys

    return Key(kid="k" + secrets.token_hex(3), secret=secrets.token_bytes(32))


def _tag(key: Key, ticket: int, nonce: str) -> str:
    mac = hmac.new(key.secret, f"e2t-v1|{ticket}|{key.kid}|{nonce}".encode("ascii"), "sha256")
    return mac.hexdigest()[:TAG_HEX]


def make_message_id(ticket: int, keyring: Keyring, domain: str, *, nonce: str | None = None) -> str:
    """A new Message-ID for a notification about `ticket`, in angle brackets."""
    import secrets  # only paid for when a notification is sent

    key = keyring.newest
    nonce = nonce or secrets.token_hex(NONCE_HEX // 2)
    return f"<e2t.{ticket}.{key.kid}.{nonce}.{_tag(key, ticket, nonce)}@{domain}>"


def ticket_from_message_id(message_id: str, keyring: Keyring | None) -> int | None:
    """The ticket number a Message-ID of ours carries, or None (not ours, unknown key, bad tag)."""
    if keyring is None or not message_id:
        return None
    match = re.match(_TOKEN, message_id.strip().lower())
    if match is None:
        return None
    ticket_text, kid, nonce, tag = match.groups()
    key = keyring.find(kid)
    if key is None:
        return None
    ticket = int(ticket_text)
    return ticket if hmac.compare_digest(_tag(key, ticket, nonce), tag[:TAG_HEX]) and len(tag) == TAG_HEX else None


def tickets_from_message_ids(message_ids: Iterable[str], keyring: Keyring | None) -> tuple[int, ...]:
    """The tickets named by valid tokens among `message_ids`, in order, without repeats."""
    found = (ticket_from_message_id(mid, keyring) for mid in message_ids)
    return tuple(dict.fromkeys(ticket for ticket in found if ticket is not None))
