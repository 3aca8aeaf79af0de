"""Message-ID tokens (signals/tokens.py): made with the newest key, verified by any key in the ring, unforgeable."""

from __future__ import annotations

from email2ticket.signals.tokens import (
    TAG_HEX,
    Key,
    Keyring,
    make_message_id,
    may_be_token,
    new_key,
    ticket_from_message_id,
    tickets_from_message_ids,
)

OLD, NEW = Key("kold01", b"o" * 32), Key("knew01", b"n" * 32)


def test_a_token_names_its_ticket_and_carries_at_least_96_bits_of_tag() -> None:
    ring = Keyring((NEW,))
    mid = make_message_id(4711, ring, "helpdesk.example.org")
    assert mid.startswith("<e2t.4711.knew01.") and mid.endswith("@helpdesk.example.org>")
    assert len(mid.split("@")[0].rsplit(".", 1)[1]) * 4 == TAG_HEX * 4 >= 96
    assert ticket_from_message_id(mid, ring) == 4711
    assert ticket_from_message_id(mid.upper(), ring) == 4711  # a relay that changed the case
    assert may_be_token(mid) and not may_be_token("<CAF1234@mail.gmail.com>")
    assert make_message_id(1, ring, "d") != make_message_id(1, ring, "d")  # a fresh nonce each time


def test_forged_and_altered_tokens_name_nothing() -> None:
    ring = Keyring((NEW,))
    mid = make_message_id(42, ring, "d", nonce="00112233aabb")
    tag = mid.split("@")[0].rsplit(".", 1)[1]
    assert ticket_from_message_id(mid.replace(".42.", ".43."), ring) is None  # another ticket, same tag
    flipped = tag[:-1] + ("0" if tag[-1] != "0" else "1")
    assert ticket_from_message_id(mid.replace(tag, flipped), ring) is None
    assert ticket_from_message_id(mid.replace(tag, tag[:24]), ring) is None  # a shortened tag
    assert ticket_from_message_id(mid, Keyring((Key("knew01", b"x" * 32),))) is None  # another secret
    assert ticket_from_message_id(mid, None) is None and ticket_from_message_id("", ring) is None


def test_rotation_keeps_old_tokens_valid_while_their_key_is_in_the_ring() -> None:
    old_mid = make_message_id(7, Keyring((OLD,)), "d")
    rotated = Keyring((NEW, OLD))
    assert make_message_id(8, rotated, "d").split(".")[2] == "knew01"  # new tokens use the newest key
    assert ticket_from_message_id(old_mid, rotated) == 7
    assert ticket_from_message_id(old_mid, Keyring((NEW,))) is None  # retired
    assert tickets_from_message_ids([old_mid, "<other@x>", old_mid], rotated) == (7,)


def test_new_keys_are_random_and_never_printed() -> None:
    first, second = new_key(), new_key()
    assert first.kid != second.kid and first.secret != second.secret and len(first.secret) == 32
    assert first.secret.hex() not in repr(first) and "32 bytes" in repr(first)
