"""The web admin's accounts: who may sign in to `email2ticket web`, and the key its session cookies are signed with.

Accounts belong to the core schema and the core command (`email2ticket web-user`), so the first account can be
made before the web extra is installed. A password is kept only as its Argon2id hash (argon2-cffi, RFC 9106's
recommended parameters), and a failed sign-in costs the same whether or not the account exists, so timing does
not tell which names exist. `session_version` is raised by a new password and by removal: the web admin checks
it on every request, so a password change ends every session opened with the old one.

argon2 is imported only here and only when an account is touched: delivery never pays for it.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Any

from msgspec import Struct
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .admin import AdminError, iso
from .models import WebAccount, WebSecret
from .schema import utcnow

if TYPE_CHECKING:
    from argon2 import PasswordHasher

    from .admin import AdminStore

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # Argon2 takes any length; this only bounds the work one request can ask for
SESSION_KEY = "session-signing-key"


class Account(Struct, frozen=True):
    """A signed-in account as the web admin's session sees it."""

    id: int
    name: str
    session_version: int


_hasher: PasswordHasher | None = None
_dummy_hash: str | None = None


def hasher() -> PasswordHasher:
    """The one Argon2id hasher (argon2-cffi's defaults: RFC 9106's low-memory profile, type ID)."""
    global _hasher
    if _hasher is None:
        from argon2 import PasswordHasher

        _hasher = PasswordHasher()
    return _hasher


def _dummy() -> str:
    """A hash to verify against when the account does not exist, so that both cases cost the same."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hasher().hash(secrets.token_hex(16))
    return _dummy_hash


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise AdminError(
            f"{name!r} is not a usable account name: 1 to 64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_password(name: str, password: str) -> str:
    """A new password: long enough to resist guessing, short enough to hash, not the account's name."""
    if len(password) < MIN_PASSWORD:
        raise AdminError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AdminError(f"the password may have at most {MAX_PASSWORD} characters")
    if password.strip().lower() == name.lower():
        raise AdminError("the password must not be the account's name")
    return password


class AccountStore:
    """Accounts and the session key, on the admin store's database."""

    def __init__(self, admin: AdminStore) -> None:
        self.admin = admin

    def add(self, name: str, password: str) -> str:
        check_password(check_name(name), password)
        digest = hasher().hash(password)
        try:
            with self.admin.session() as s:
                if s.scalars(select(WebAccount).where(WebAccount.name == name)).first() is not None:
                    raise AdminError(f"there is already a web account {name!r} (change its password: web-user passwd)")
                now = utcnow()
                s.add(
                    WebAccount(
                        name=name, password_hash=digest, session_version=1, created_at=now, password_changed_at=now
                    )
                )
        except IntegrityError:  # added by someone else at the same moment
            raise AdminError(f"there is already a web account {name!r}") from None
        return f"web account {name!r} added"

    def set_password(self, name: str, password: str) -> str:
        check_password(name, password)
        digest = hasher().hash(password)
        with self.admin.session() as s:
            account = _find(s, name)
            account.password_hash, account.password_changed_at = digest, utcnow()
            account.session_version += 1
        return f"password of web account {name!r} changed; its open sessions are ended"

    def remove(self, name: str) -> str:
        with self.admin.session() as s:
            s.delete(_find(s, name))
        return f"web account {name!r} removed; its open sessions are ended"

    def accounts(self) -> list[dict[str, Any]]:
        with self.admin.session() as s:
            return [
                {
                    "name": a.name,
                    "created_at": iso(a.created_at),
                    "password_changed_at": iso(a.password_changed_at),
                    "last_login_at": iso(a.last_login_at) if a.last_login_at else None,
                }
                for a in s.scalars(select(WebAccount).order_by(WebAccount.name))
            ]

    def authenticate(self, name: str, password: str) -> Account | None:
        """The account when the password is right, else None; the same Argon2 work either way.

        The hash is checked outside any transaction: on SQLite a transaction holds the write lock, and a
        delivery must never wait for a password check. A hash made with weaker parameters than today's is
        replaced on success, unless the password changed meanwhile.
        """
        from argon2.exceptions import InvalidHashError, VerificationError

        found: tuple[int, str, int] | None = None
        if NAME.fullmatch(name):
            with self.admin.session() as s:
                row = s.scalars(select(WebAccount).where(WebAccount.name == name)).first()
                found = (row.id, row.password_hash, row.session_version) if row is not None else None
        digest = found[1] if found is not None else _dummy()
        try:
            hasher().verify(digest, password[:MAX_PASSWORD])
        except (VerificationError, InvalidHashError):
            return None
        if found is None:
            return None
        account_id, _, version = found
        rehashed = hasher().hash(password) if hasher().check_needs_rehash(digest) else None
        with self.admin.session() as s:
            account = s.get(WebAccount, account_id)
            if account is None or account.session_version != version:  # removed or changed meanwhile
                return None
            if rehashed is not None and account.password_hash == digest:
                account.password_hash = rehashed
            account.last_login_at = utcnow()
            return Account(account.id, account.name, account.session_version)

    def current(self, account_id: int, session_version: int) -> Account | None:
        """The account a session names, while that session is still valid for it."""
        with self.admin.session() as s:
            account = s.get(WebAccount, account_id)
            if account is None or account.session_version != session_version:
                return None
            return Account(account.id, account.name, account.session_version)

    def session_key(self) -> bytes:
        """The key that signs session cookies: made on first use (32 random bytes), then read from the database."""
        for _ in range(3):
            try:
                with self.admin.session() as s:
                    row = s.get(WebSecret, SESSION_KEY)
                    if row is None:
                        row = WebSecret(name=SESSION_KEY, value=secrets.token_hex(32), created_at=utcnow())
                        s.add(row)
                    value = row.value
                return bytes.fromhex(value)
            except IntegrityError:  # another process made it at the same moment: read theirs
                continue
        raise AdminError("could not create the session key")


def _find(s: Any, name: str) -> WebAccount:
    account = s.scalars(select(WebAccount).where(WebAccount.name == name)).first()
    if account is None:
        raise AdminError(f"there is no web account {name!r} (see `email2ticket web-user list`)")
    assert isinstance(account, WebAccount)
    return account
