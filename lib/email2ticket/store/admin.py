"""The admin commands' reads and writes, through the typed ORM; results come back as plain dicts.

Returning dicts (the exact shapes `--json` prints) keeps the CLI free of sessions and lazy loading,
and makes each operation testable on its own against SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from ..config.rule_settings import (
    DESCRIPTIONS,
    RuleSettings,
    format_value,
    setting_names,
    settings_from_rows,
    stored_form,
)
from ..reply.extract import DEFAULT_SEPARATORS, InvalidSeparator, parse_separator, separators_from_edits
from ..rules.decision import ACCESS_LEVELS
from .engine import ensure_schema, make_engine, normalise_url, redact
from .errors import translate_errors
from .models import Attachment, Comment, Message, Note, SeparatorEdit, Setting, Ticket, User
from .schema import utcnow
from .ticket_rows import LISTING, queue_id_of, routing_dict, ticket_head, ticket_row


class AdminError(Exception):
    """A refused admin request (unknown id, invalid value); the message is one line for the admin."""


class SettingConflict(AdminError):
    """Another admin changed a setting between showing it and saving it: `current` is its value now."""

    def __init__(self, name: str, current: str) -> None:
        super().__init__(f"{name} was changed meanwhile by someone else, to {current!r}; not overwritten")
        self.name, self.current = name, current


class AdminStore:
    def __init__(self, url: str, *, lock_timeout: float = 30.0) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, lock_timeout=lock_timeout)

    def init(self) -> str:
        """Create or upgrade the schema to this code's revision; returns what it did."""
        from .engine import current_revision
        from .migrate import upgrade
        from .schema import SCHEMA_REVISION

        with translate_errors(redact(self.url)), self.engine.connect() as connection:
            before = current_revision(connection)
        with translate_errors(redact(self.url)):
            upgrade(self.engine)
        if before == SCHEMA_REVISION:
            return f"schema already at revision {SCHEMA_REVISION}"
        return f"schema {'upgraded from ' + before if before else 'created'} at revision {SCHEMA_REVISION}"

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        with translate_errors(redact(self.url)):
            ensure_schema(self.engine, self.url)
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                yield session

    # --- users ----------------------------------------------------------------------------------

    def add_user(self, email: str, *, name: str | None, technician: bool, access: str | None) -> dict[str, Any]:
        email = _email(email)
        with self.session() as s:
            user = s.scalars(select(User).where(User.email == email)).first()
            if user is None:
                user = User(email=email, is_technician=False, access="none", disabled=False, created_at=utcnow())
                s.add(user)
            if name is not None:
                user.name = name
            if technician:
                user.is_technician = True
                user.access = "limited" if user.access == "none" else user.access
            if access is not None:
                user.access = _access(access)
            user.disabled = False
            s.flush()
            return user_dict(user)

    def set_user(self, email: str, *, technician: bool | None, access: str | None) -> dict[str, Any]:
        with self.session() as s:
            user = _find_user(s, email)
            if technician is not None:
                user.is_technician = technician
                if technician and user.access == "none" and access is None:
                    user.access = "limited"
            if access is not None:
                user.access = _access(access)
            return user_dict(user)

    def disable_user(self, email: str) -> dict[str, Any]:
        with self.session() as s:
            user = _find_user(s, email)
            user.disabled = True
            return user_dict(user)

    def list_users(self) -> list[dict[str, Any]]:
        with self.session() as s:
            return [user_dict(u) for u in s.scalars(select(User).order_by(User.email))]

    # --- settings -------------------------------------------------------------------------------

    def show_settings(self) -> list[dict[str, Any]]:
        with self.session() as s:
            rows = {row.name: row.value for row in s.scalars(select(Setting))}
        effective, defaults = settings_from_rows(rows), RuleSettings()
        return [
            {
                "name": name,
                "value": format_value(getattr(effective, name)),
                "default": format_value(getattr(defaults, name)),
                "description": DESCRIPTIONS[name],
            }
            for name in setting_names()
        ]

    def set_setting(self, name: str, value: str, *, expected: str | None = None) -> dict[str, Any]:
        """Validate and store one setting. With `expected` (the value an admin's form showed), refuse with
        SettingConflict when someone else changed it to another value meanwhile, instead of overwriting it."""
        from ..config.rule_settings import SettingError

        try:
            stored = stored_form(name, value)
        except SettingError as exc:
            raise AdminError(str(exc)) from exc
        with self.session() as s:
            row = s.get(Setting, name, with_for_update=expected is not None)
            if expected is not None:
                current = format_value(getattr(settings_from_rows({name: row.value} if row else {}), name))
                wanted = format_value(getattr(settings_from_rows({name: stored}), name))
                if current not in (expected, wanted):
                    raise SettingConflict(name, current)
            if row is None:
                s.add(Setting(name=name, value=stored, updated_at=utcnow()))
            else:
                row.value, row.updated_at = stored, utcnow()
        return next(item for item in self.show_settings() if item["name"] == name)

    # --- separators -----------------------------------------------------------------------------

    def list_separators(self) -> list[dict[str, Any]]:
        with self.session() as s:
            edits = s.execute(select(SeparatorEdit.op, SeparatorEdit.text).order_by(SeparatorEdit.id)).all()
        return [
            {"text": text, "origin": "built-in" if text in DEFAULT_SEPARATORS else "added"}
            for text in separators_from_edits((op, text) for op, text in edits)
        ]

    def add_separator(self, text: str) -> str:
        try:
            parse_separator(text)
        except InvalidSeparator as exc:
            raise AdminError(str(exc)) from exc
        with self.session() as s:
            edit = s.scalars(select(SeparatorEdit).where(SeparatorEdit.text == text)).first()
            if edit is not None and edit.op == "remove":
                s.delete(edit)
                return f"restored built-in separator {text!r}"
            if edit is not None or text in DEFAULT_SEPARATORS:
                return f"separator {text!r} is already in the list"
            s.add(SeparatorEdit(op="add", text=text, created_at=utcnow()))
            return f"added separator {text!r}"

    def remove_separator(self, text: str) -> str:
        with self.session() as s:
            edit = s.scalars(select(SeparatorEdit).where(SeparatorEdit.text == text)).first()
            if edit is not None and edit.op == "add":
                s.delete(edit)
                return f"removed separator {text!r}"
            if text in DEFAULT_SEPARATORS and edit is None:
                s.add(SeparatorEdit(op="remove", text=text, created_at=utcnow()))
                return f"removed built-in separator {text!r} (`separators reset` brings it back)"
            raise AdminError(f"separator {text!r} is not in the list (see `email2ticket separators list`)")

    def reset_separators(self) -> str:
        with self.session() as s:
            count = len(s.scalars(select(SeparatorEdit)).all())
            s.execute(delete(SeparatorEdit))
        return f"dropped {count} edit(s); the built-in separator list is in force"

    # --- tickets --------------------------------------------------------------------------------

    def show_ticket(self, ticket_id: int) -> dict[str, Any]:
        with self.session() as s:
            return ticket_dict(load_ticket(s, ticket_id))

    def assign_ticket(self, ticket_id: int, email: str) -> dict[str, Any]:
        with self.session() as s:
            ticket = _find_ticket(s, ticket_id)
            user = _find_user(s, email)
            if not user.is_technician:
                raise AdminError(f"{user.email} is not a technician (make them one with `user set --technician`)")
            ticket.technician_id, ticket.updated_at = user.id, utcnow()
        return self.show_ticket(ticket_id)

    def close_ticket(self, ticket_id: int) -> dict[str, Any]:
        with self.session() as s:
            ticket = _find_ticket(s, ticket_id)
            ticket.status, ticket.updated_at = "closed", utcnow()
        return self.show_ticket(ticket_id)

    def list_tickets(self, *, queue: str | None = None) -> list[dict[str, Any]]:
        """Every ticket, or those of one queue (`tickets list --queue NAME`): store/ticket_rows.py."""
        with self.session() as s:
            query = select(Ticket).order_by(Ticket.id).options(*LISTING)
            if queue is not None:
                queue_id = queue_id_of(s, queue)
                if queue_id is None:
                    raise AdminError(f"there is no queue {queue!r} (see `email2ticket queue list`)")
                query = query.where(Ticket.queue_id == queue_id)
            return [ticket_row(t) for t in s.scalars(query)]

    # --- the audit trail ------------------------------------------------------------------------

    def list_messages(self, *, action: str | None, since: datetime | None) -> list[dict[str, Any]]:
        query = select(Message).order_by(Message.id)
        if action:
            query = query.where(Message.action == action)
        if since:
            query = query.where(Message.received_at >= since)
        with self.session() as s:
            return [message_dict(m) for m in s.scalars(query)]

    def show_message(self, message_row: int) -> tuple[dict[str, Any], bytes]:
        """The record and its raw bytes. A duplicate keeps only its own header block (store/audit.py): its body
        comes from the first copy, which `raw_body_from` names (with `raw_exact` false in the rare case that
        the copies' bodies differ in their line endings, so the bytes put together are not the ones received)."""
        from .audit import duplicate_raw

        with self.session() as s:
            message = s.get(Message, message_row)
            if message is None:
                raise AdminError(f"there is no message {message_row} in the audit trail")
            record, raw = message_dict(message), message.raw
            if message.action == "duplicate" and len(raw) < message.size:
                first = s.scalars(select(Message).where(Message.delivered_key == message.idempotency_key)).first()
                if first is not None:
                    raw, exact = duplicate_raw(raw, message.size, message.raw_sha256, first.raw)
                    record["raw_body_from"], record["raw_exact"] = first.id, exact
            return record, raw


# --- shapes printed by --json -------------------------------------------------------------------


def iso(moment: datetime) -> str:
    """Timestamps as ISO 8601 in UTC; SQLite hands them back naive, but we only ever store UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def user_dict(user: User) -> dict[str, Any]:
    return {
        "email": user.email,
        "name": user.name,
        "technician": user.is_technician,
        "access": user.access,
        "disabled": user.disabled,
    }


def attachment_dict(a: Attachment) -> dict[str, Any]:
    return {"filename": a.filename, "content_type": a.content_type, "size": a.size, "sha256": a.sha256}


def ticket_dict(ticket: Ticket) -> dict[str, Any]:
    return {
        **ticket_head(ticket),
        "description": ticket.description,
        "created_at": iso(ticket.created_at),
        "message_id": ticket.message_id,
        "unverified_sender": ticket.unverified_sender,
        "refers_to": ticket.refers_to,
        "participants": [p.address for p in ticket.participants],
        "merged_into": ticket.merged_into,
        **routing_dict(ticket),
        "notes": [note_dict(n) for n in ticket.notes],
        "attachments": [attachment_dict(a) for a in ticket.attachments],
        "comments": [
            {
                "author": c.author.email,
                "verified": c.author_verified,
                "body": c.body,
                "created_at": iso(c.created_at),
                "message_id": c.message_id,
                "attachments": [attachment_dict(a) for a in c.attachments],
            }
            for c in ticket.comments
        ],
    }


def note_dict(n: Note) -> dict[str, Any]:
    created = iso(n.created_at)
    return {"kind": n.kind, "author": n.author, "body": n.body, "created_at": created, "message": n.message_row}


def message_dict(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "received_at": iso(m.received_at),
        "queue_id": m.queue_id,
        "envelope_sender": m.envelope_sender,
        "envelope_recipient": m.envelope_recipient,
        "sender": m.sender,
        "message_id": m.message_id,
        "subject": m.subject,
        "action": m.action,
        "ticket": m.ticket_id,
        "comment": m.comment_id,
        "exit_code": m.exit_code,
        "reasons": json.loads(m.reasons),
        "auth_verdict": m.auth_verdict,
        "held_by": m.held_by,
        "size": m.size,
        "sha256": m.raw_sha256,
    }


def _email(text: str) -> str:
    from ..mail.message import normalise_address

    email = normalise_address(text)
    if email is None:
        raise AdminError(f"{text!r} is not an e-mail address")
    return email


def _access(level: str) -> str:
    if level not in ACCESS_LEVELS:
        raise AdminError(f"access must be one of {', '.join(ACCESS_LEVELS)}")
    return level


def _find_user(s: Session, email: str) -> User:
    address = _email(email)
    user = s.scalars(select(User).where(User.email == address)).first()
    if user is None:
        raise AdminError(f"there is no user {address} (add one with `email2ticket user add`)")
    return user


def load_ticket(s: Session, ticket_id: int) -> Ticket:
    """A ticket with everything `ticket show` prints (people, attachments, comments), in one round of queries."""
    ticket = s.scalars(
        select(Ticket)
        .where(Ticket.id == ticket_id)
        .options(
            selectinload(Ticket.requester),
            selectinload(Ticket.technician),
            selectinload(Ticket.attachments),
            selectinload(Ticket.participants),
            selectinload(Ticket.queue),
            selectinload(Ticket.tags),
            selectinload(Ticket.comments).selectinload(Comment.author),
            selectinload(Ticket.comments).selectinload(Comment.attachments),
        )
    ).first()
    if ticket is None:
        raise AdminError(f"there is no ticket #{ticket_id}")
    return ticket


def _find_ticket(s: Session, ticket_id: int) -> Ticket:
    ticket = s.get(Ticket, ticket_id)
    if ticket is None:
        raise AdminError(f"there is no ticket #{ticket_id}")
    return ticket
