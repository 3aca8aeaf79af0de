"""Reading a mail subject: which ticket it refers to, whether it is a reply, and what a new ticket is called.

A reply is threaded by the ticket number the help desk put at the END of the subject ("[Ticket #42]"),
because mail clients only ever add text at the START ("Re: ", "AW: ", "Fwd: "). Looking only at the
right-most token keeps "Room 101 is cold" or "Error E42" from hijacking ticket 101 or 42 when they sit
in the middle of a sentence, and looking only at the left-most prefixes keeps "Regarding the printer"
from being taken for a reply. Subjects arrive here already RFC 2047-decoded; nothing in this module
does I/O, and only the stdlib ``re`` is imported because this runs once for every delivered mail.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from ..config.rule_settings import DEFAULT_FORWARD_PREFIXES, DEFAULT_REPLY_PREFIXES

# The longest reference is "[Ticket #123456789]" (19 characters) plus the character before it that the
# "own token" rule inspects: starting the search this far from the end cannot change the answer, and it
# makes a 100 KB subject cost what a short one does.
_REFERENCE_WINDOW = 24

# ASCII digits only: \d and str.isdigit() also accept Arabic-Indic or full-width digits, which int()
# would happily turn into a ticket id nobody typed. Nine digits keep the id inside a 32-bit column.
_NUMBER = "([0-9]{1,9})"
_MARKED = rf"(?:(?i:Ticket)[ \t]?\#?|\#){_NUMBER}"  # "#42", "Ticket 42", "Ticket #42", "Ticket#42"
_MARKED_OR_BARE = rf"(?:(?i:Ticket)[ \t]?\#?|\#)?{_NUMBER}"


@functools.cache
def _reference_pattern(token: str) -> re.Pattern[str]:
    """The token alone or inside a MATCHING pair of brackets, standing on its own, at the very end.

    Compiled on first use, once per process: a delivery needs one of the two tokens, not both.

    The look-behind is the "own token" rule: the token starts the subject or follows whitespace, "#",
    "[", "(" or "<", so "jam-42" and "E42" are not references. Each bracket pair is its own branch so
    that "42]" (a closer without its opener) is refused; re has no "the closer of this opener".
    """
    bracketed = [rf"\{opener}{token}\{closer}" for opener, closer in ("[]", "()", "<>")]
    return re.compile(rf"(?<![^\s#\[(<])(?:{'|'.join([*bracketed, token])})\Z")


def _reference_match(subject: str, bare_numbers: bool) -> re.Match[str] | None:
    """Where the trailing reference starts, if there is one worth threading on.

    Ticket 0 is refused: ids start at 1, so "#0" is somebody's list item or a typo, and threading it
    would only ever fail later with a less helpful message.
    """
    text = subject.rstrip()
    pattern = _reference_pattern(_MARKED_OR_BARE if bare_numbers else _MARKED)
    match = pattern.search(text, max(0, len(text) - _REFERENCE_WINDOW))
    if match is None or int(_number(match)) == 0:
        return None
    return match


def _number(match: re.Match[str]) -> str:
    """The digits, from whichever bracket branch matched (only one capturing group ever takes part)."""
    return next(group for group in match.groups() if group is not None)


def find_ticket_reference(subject: str, *, bare_numbers: bool = True) -> int | None:
    """The ticket this subject refers to, read from its right-most token only.

    With bare_numbers=False a number counts only when marked ("#42", "Ticket 42"), for help desks whose
    customers write subjects such as "Room 101" that would otherwise land on ticket 101.
    """
    match = _reference_match(subject, bare_numbers)
    return None if match is None else int(_number(match))


_COUNTER = r"(?:\[[0-9]{1,4}\]|\([0-9]{1,4}\))?"  # "Re[2]:" and "RE(2):" from clients that count replies
_COLON = "[:：]"  # the full-width colon is what Chinese and Japanese clients put after 回复 or 转发


@functools.lru_cache(maxsize=32)
def _prefix_pattern(prefixes: tuple[str, ...]) -> re.Pattern[str] | None:
    """One leading prefix: a whole prefix word directly followed by a colon, so "Rx:" is not "R:".

    Longest alternatives first, so that "RE" is not tried (and then abandoned) before "Res". A colon
    typed into a configured prefix ("Re:") is dropped, since the colon is matched separately.
    """
    words = {word for prefix in prefixes if (word := prefix.strip().rstrip(":："))}
    if not words:
        return None
    alternation = "|".join(re.escape(word) for word in sorted(words, key=len, reverse=True))
    return re.compile(rf"\s*(?:{alternation}){_COUNTER}{_COLON}", re.IGNORECASE)


def has_reply_prefix(subject: str, prefixes: Sequence[str] = DEFAULT_REPLY_PREFIXES) -> bool:
    """Whether the subject starts like an answer to an earlier mail.

    Only the left-most prefix is looked at: that is where every client puts it, and it is what tells a
    reply to an existing conversation from a new question that happens to mention a number.
    """
    pattern = _prefix_pattern(tuple(prefixes))
    return pattern is not None and pattern.match(subject) is not None


def _prefix_run_end(subject: str, prefixes: Sequence[str]) -> int:
    """Where the run of leading prefixes ("Re: AW: Fwd:") and the whitespace after it ends; 0 if none."""
    pattern = _prefix_pattern(tuple(prefixes))
    end = 0
    while pattern is not None and (match := pattern.match(subject, end)) is not None:
        end = match.end()
    if end == 0:
        return 0
    return len(subject) - len(subject[end:].lstrip())


def strip_prefixes(subject: str, prefixes: Sequence[str]) -> str:
    """The subject without its leading run of prefixes, however many, mixed and repeated.

    Mail that bounced between two clients collects "Re: AW: RE: Fwd:"; the ticket title should not.
    A subject without any prefix comes back unchanged, leading whitespace included.
    """
    end = _prefix_run_end(subject, prefixes)
    return subject[end:] if end else subject


def _collapse_whitespace(text: str) -> str:
    """One space wherever a folded header left a newline, a tab or a run of spaces."""
    return " ".join(text.split())


def clean_subject(
    subject: str,
    *,
    reply_prefixes: Sequence[str] = DEFAULT_REPLY_PREFIXES,
    forward_prefixes: Sequence[str] = DEFAULT_FORWARD_PREFIXES,
    bare_numbers: bool = True,
) -> str:
    """The title of a NEW ticket: what the sender wrote, without the prefixes and a stale reference.

    A mail whose reference did not lead to a ticket (deleted, another help desk's number) still
    becomes a ticket, and "Re: Printer jam [Ticket #42]" should then be titled "Printer jam". The
    reference is looked for in the whole subject, exactly as find_ticket_reference does, so the two
    never disagree about what the reference is. When nothing meaningful is left ("Re: #42") the
    original subject is kept, since an empty title helps no one.
    """
    start = _prefix_run_end(subject, (*reply_prefixes, *forward_prefixes))
    end = len(subject)
    reference = _reference_match(subject, bare_numbers)
    if reference is not None and reference.start() >= start:
        end = reference.start()
    title = _collapse_whitespace(subject[start:end])
    return title or _collapse_whitespace(subject) or "(no subject)"
