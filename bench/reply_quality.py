"""Reply-extraction quality: email2ticket against the best open-source reply parsers, on the shared corpus.

Runs every labelled case of ``shared/corpus/reply_pairs.jsonl`` through

* email2ticket: the very function delivery uses on a reply (``email2ticket.reply.extract.extract_reply`` on the
  message ``parse_message`` builds), with the built-in separators plus, for a case that declares one, the
  custom separator an admin would add;
* the peers, when installed (``pip install -e '.[bench]'``): email-reply-parser, mail-parser-reply (all its
  languages) and talon (``extract_from_plain``, or ``extract_from_html`` on the HTML cases).

Text-only peers get what a mail integration would hand them: the first text/plain part of a full message, the
bare body as it is, and for an HTML-only case the HTML converted to text by inscriptis (as delivery does).

Scoring follows the corpus README: cases whose inputs are the same text (after line-ending and trailing-space
normalisation) are one case, which passes when every expectation on it passes.  Where the corpus asserts
opposite things about the same text (one source keeps a line right below the new text, another drops the very
same line: signatures, taglines, ornamental dashes), those cases are *contested*: listed, and left out of the
score.  Nothing else is left out.  The script also times email2ticket on the corpus' quadratic-regex trap and
on 5 MB bodies.  No network is used.

    python bench/reply_quality.py [--corpus DIR] [--no-peers] [--peer-failures]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import io
import json
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from email2ticket.mail.message import ParsedMessage, parse_message  # noqa: E402
from email2ticket.reply.extract import ReplyCut, effective_separators, extract_reply  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"
US = "email2ticket"
EXACT_KINDS = frozenset({"exact", "exact_trimmed"})

# --- the cases -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One line of reply_pairs.jsonl, with the input it names already read."""

    id: str
    source: str
    match: str
    expected: str | None
    contains: tuple[str, ...]
    not_contains: tuple[str, ...]
    regex: str | None
    quoted: str | None
    quote_header: str | None
    nonempty: bool
    kind: str  # "body", "message" (full RFC 822 file), "html" (an HTML body)
    custom_separator: str | None
    raw: bytes

    @property
    def separators(self) -> tuple[str, ...]:
        added = [self.custom_separator] if self.custom_separator else []
        return effective_separators(added, [])


@dataclass(frozen=True)
class Input:
    """What a parser is handed: the plain text, and the HTML for HTML-aware ones."""

    text: str
    html: str | None


def _pcre_to_separator(pcre: str) -> str:
    """ "/^(From\\: .+)/ms" as the admin would type it here: m is always on, s becomes (?s)."""
    body, _, flags = pcre[1:].rpartition("/")
    return f"/{'(?s)' if 's' in flags else ''}{body}/"


def load_cases(corpus: Path) -> list[Case]:
    cases = []
    for line in (corpus / "reply_pairs.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        fmt = row.get("input_format") or ""
        kind = "message" if fmt.startswith("rfc822") else "html" if fmt == "html body" else "body"
        pcre = row.get("custom_quote_header_regex_pcre")
        cases.append(
            Case(
                id=row["id"],
                source=row["source"],
                match=row["match"],
                expected=row.get("expected_new_text"),
                contains=tuple(row.get("expected_contains") or ()),
                not_contains=tuple(row.get("expected_not_contains") or ()),
                regex=row.get("expected_regex"),
                quoted=row.get("expected_quoted_text"),
                quote_header=row.get("expected_quote_header_in_older_reply"),
                nonempty=bool(row.get("expected_nonempty")),
                kind=kind,
                custom_separator=_pcre_to_separator(pcre) if pcre else None,
                raw=(corpus / row["email_path"]).read_bytes(),
            )
        )
    return cases


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _first_part(raw: bytes, subtype: str) -> str | None:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    for part in message.walk():
        if part.get_content_type() == f"text/{subtype}":
            return str(part.get_content())
    return None


def peer_input(case: Case) -> Input:
    """The text a plain-text reply parser gets for this case (and the HTML, for the HTML cases)."""
    if case.kind == "message":
        return Input(text=(_first_part(case.raw, "plain") or "").replace("\r\n", "\n"), html=None)
    text = _decode(case.raw).replace("\r\n", "\n")
    if case.kind == "html":
        from inscriptis import get_text

        return Input(text=str(get_text(text)), html=text)
    return Input(text=text, html=None)


def delivered_message(case: Case) -> ParsedMessage:
    """The message as delivery parses it: the file itself, or a bare body or HTML body put in a mail."""
    if case.kind == "message":
        return parse_message(case.raw)
    subtype = "html" if case.kind == "html" else "plain"
    head = f"Subject: Re: corpus case [Ticket #1]\nContent-Type: text/{subtype}; charset=utf-8\n\n"
    return parse_message(head.encode() + _decode(case.raw).encode("utf-8"))


# --- what each parser returns ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """The new text a parser found, and where it says the quoted part starts (None: it does not say)."""

    new: str
    quoted: str | None = None


Parser = Callable[[Case], Outcome]


def run_us(case: Case) -> Outcome:
    message = delivered_message(case)
    cut: ReplyCut = extract_reply(message, case.separators)
    quoted = None
    if cut.quote_line is not None:
        quoted = "\n".join(message.text.replace("\r\n", "\n").split("\n")[cut.quote_line - 1 :])
    return Outcome(new=cut.text, quoted=quoted)


def _peers() -> dict[str, Parser]:
    """The peers that are installed, by name; a missing one is reported, not fatal."""
    peers: dict[str, Parser] = {}
    with contextlib.suppress(ImportError):
        from email_reply_parser import EmailReplyParser as GithubParser  # type: ignore[import-untyped]

        peers["email-reply-parser"] = lambda case: Outcome(str(GithubParser.parse_reply(peer_input(case).text)))
    with contextlib.suppress(ImportError):
        from mailparser_reply import EmailReplyParser as MprParser  # type: ignore[import-untyped]
        from mailparser_reply.constants import MAIL_LANGUAGES  # type: ignore[import-untyped]

        mpr = MprParser(languages=[language for language in MAIL_LANGUAGES if len(language) == 2])
        peers["mail-parser-reply"] = lambda case: Outcome(mpr.parse_reply(peer_input(case).text) or "")
    with contextlib.suppress(ImportError):
        peers["talon"] = _talon()
    return peers


def _talon() -> Parser:
    from talon import quotations  # type: ignore[import-untyped]

    def run(case: Case) -> Outcome:
        given = peer_input(case)
        if given.html is not None:
            from inscriptis import get_text

            return Outcome(str(get_text(quotations.extract_from_html(given.html))))
        return Outcome(str(quotations.extract_from_plain(given.text)))

    return run


# --- judging -----------------------------------------------------------------------------------------------


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.replace("\r\n", "\n").strip().split("\n")]


def _quoted_part(case: Case, outcome: Outcome) -> str | None:
    """Where the parser puts the quote: what it says, else the input after the new text, if it is a prefix."""
    if outcome.quoted is not None:
        return outcome.quoted.strip()
    text, new = peer_input(case).text.strip(), outcome.new.strip()
    return text[len(new) :].strip() if text.startswith(new) else None


def judge(case: Case, outcome: Outcome) -> str | None:
    """None when the outcome meets the case's expectation, else why not."""
    new = outcome.new
    if case.match in EXACT_KINDS and new.strip() != (case.expected or "").strip():
        return "new text differs"
    if case.match == "ws_insensitive" and _squash(new) != _squash(case.expected or ""):
        return "new text differs (whitespace ignored)"
    missing = [text for text in case.contains if text not in new]
    if missing:
        return f"missing {missing[0]!r}"
    present = [text for text in case.not_contains if text in new]
    if present:
        return f"still contains {present[0]!r}"
    if case.nonempty and not new.strip():
        return "empty"
    if case.regex is not None and not re.search(case.regex, new, re.MULTILINE):
        return f"does not match /{case.regex}/"
    if case.match == "no_split" and _lines(new) != _lines(peer_input(case).text):
        return "cut a message that has no quote"
    if case.match == "quoted_part_exact" and _quoted_part(case, outcome) != (case.quoted or "").strip():
        return "quote starts elsewhere"
    if case.match == "quote_split":
        quoted = _quoted_part(case, outcome) or ""
        header = case.quote_header or ""
        if not quoted.startswith(header) or header in new:
            return "quote starts elsewhere"
    return None


# --- deduplication and contested cases ------------------------------------------------------------------------


def content_key(case: Case) -> str:
    """Cases on the same text are one case: same input (line ends, trailing spaces aside), same separators."""
    text = "\n".join(_lines(_decode(case.raw)))
    return hashlib.sha256(f"{case.kind}\0{case.custom_separator}\0{text}".encode()).hexdigest()


def _normal(text: str) -> str:
    return " ".join(text.split())


def _paragraphs(text: str) -> list[str]:
    return [_normal(block) for block in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")) if block.strip()]


def _dropped_paragraph(case: Case) -> str | None:
    """The paragraph an exact case says is NOT new text although it stands right below the new text."""
    if case.match not in EXACT_KINDS or not case.expected:
        return None
    text = _normal(peer_input(case).text)
    expected = _normal(case.expected)
    if not text.startswith(expected):
        return None
    rest = peer_input(case).text
    paragraphs = _paragraphs(rest)
    kept = len(_paragraphs(case.expected))
    return paragraphs[kept] if len(paragraphs) > kept else None


@dataclass
class Contest:
    """A line of text that some cases keep as the end of the new text and others drop right below it."""

    text: str
    keep: list[str] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)


def contests(cases: Sequence[Case]) -> list[Contest]:
    """Opposite assertions about the same text, found from the corpus alone (never from any parser's output)."""
    last_kept = {
        case.id: _paragraphs(case.expected)[-1]
        for case in cases
        if case.match in EXACT_KINDS and case.expected and _paragraphs(case.expected)
    }
    found: dict[str, Contest] = {}
    for case in cases:
        dropped = {_dropped_paragraph(case), *(_normal(text) for text in case.not_contains)} - {None, ""}
        for text in dropped:
            keepers = [other for other, kept in last_kept.items() if kept == text and other != case.id]
            if keepers and text is not None:
                contest = found.setdefault(text, Contest(text))
                contest.drop.append(case.id)
                contest.keep.extend(keeper for keeper in keepers if keeper not in contest.keep)
    return list(found.values())


@dataclass
class Group:
    """Cases on one text."""

    cases: list[Case]
    contested: bool = False

    @property
    def sources(self) -> set[str]:
        return {case.source for case in self.cases}


def group_cases(cases: Sequence[Case], disputed: Iterable[Contest]) -> list[Group]:
    groups: dict[str, Group] = {}
    for case in cases:
        groups.setdefault(content_key(case), Group([])).cases.append(case)
    contested_ids = {case_id for contest in disputed for case_id in (*contest.keep, *contest.drop)}
    for group in groups.values():
        group.contested = any(case.id in contested_ids for case in group.cases)
    return list(groups.values())


# --- timing ------------------------------------------------------------------------------------------------


def _timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def _parse_and_extract(raw: bytes, separators: Sequence[str]) -> ReplyCut:
    return extract_reply(parse_message(raw), separators)


def timings(corpus: Path) -> list[tuple[str, float]]:
    """Seconds email2ticket takes, parse and extraction together, on the inputs that trap quadratic parsers."""
    separators = effective_separators([], [])
    long_quote = (corpus / "github_email_reply_parser" / "emails" / "email_long_quote.txt").read_bytes()
    head = b"Subject: Re: x [Ticket #1]\nContent-Type: text/%s; charset=utf-8\n\n"
    lines = "".join(f"Line {n} of a long answer, with On, wrote, From: and > in it.\n" for n in range(85_000))
    quoted = "Answer\n\nOn Mon, 5 Jan 2026 at 10:00, Bob <bob@example.com> wrote:\n" + "> quoted line\n" * 370_000
    encoded = "Answer<br>\n" + "&gt; quoted line with an &amp; and =3D<br>\n" * 120_000
    html = "<div>Answer</div><div class=gmail_quote><blockquote>" + "<p>quoted paragraph</p>" * 230_000
    inputs = {
        "email_long_quote.txt (767 kB, one 708 kB line of >)": head % b"plain" + long_quote,
        "5 MB plain body, no separator": head % b"plain" + lines.encode(),
        "5 MB plain body, 370,000 quoted lines": head % b"plain" + quoted.encode(),
        "5 MB plain body of HTML entities and tags": head % b"plain" + encoded.encode(),
        "5 MB HTML body, Gmail quote": head % b"html" + (html + "</blockquote></div>").encode(),
    }
    results = []
    for label, raw in inputs.items():
        seconds = _timed(functools.partial(_parse_and_extract, raw, separators))
        message = parse_message(raw)
        results.append((f"{label}: parse + extract", seconds))
        results.append((f"{label}: extract only", _timed(functools.partial(extract_reply, message, separators))))
    return results


# --- report ------------------------------------------------------------------------------------------------


def _rate(passed: int, total: int) -> str:
    return f"{passed:>3}/{total:<3} {100 * passed / total:5.1f}%" if total else "     -      "


def report(corpus: Path, with_peers: bool, peer_failures: bool, out: io.TextIOBase | None = None) -> bool:
    write = (out or sys.stdout).write
    cases = load_cases(corpus)
    parsers: dict[str, Parser] = {US: run_us}
    peers = _peers() if with_peers else {}
    parsers.update(peers)
    missing = [name for name in ("email-reply-parser", "mail-parser-reply", "talon") if name not in peers]
    disputed = contests(cases)
    groups = group_cases(cases, disputed)
    verdicts = {name: {case.id: _safe_judge(run, case) for case in cases} for name, run in parsers.items()}

    scored = [group for group in groups if not group.contested]
    write(f"{len(cases)} cases, {len(groups)} after deduplication by content, {len(groups) - len(scored)} contested\n")
    if with_peers and missing:
        write(f"peers not installed (pip install -e '.[bench]'): {', '.join(missing)}\n")
    names = list(parsers)
    write(f"\n{'source':34} {'cases':>5}  " + "  ".join(f"{name:>18}" for name in names) + "\n")
    sources = sorted({case.source for case in cases})
    rows = [(source, [group for group in scored if source in group.sources]) for source in sources]
    rows.append(("OVERALL (deduplicated)", scored))
    for label, members in rows:
        cells = []
        for name in names:
            passed = sum(all(verdicts[name][case.id] is None for case in group.cases) for group in members)
            cells.append(f"{_rate(passed, len(members)):>18}")
        write(f"{label:34} {len(members):>5}  " + "  ".join(cells) + "\n")

    write("\nContested (left out of the score; the corpus asserts both):\n")
    for contest in disputed:
        write(f"  {contest.text[:70]!r}\n    kept by:    {', '.join(contest.keep)}\n")
        write(f"    dropped by: {', '.join(contest.drop)}\n")

    failures = [(group, case) for group in scored for case in group.cases if verdicts[US][case.id] is not None]
    write(f"\n{US} failures ({len(failures)}):\n")
    for _, case in failures:
        write(f"  {case.id}: {verdicts[US][case.id]}\n")
    if peer_failures:
        for name in peers:
            failed = [case.id for group in scored for case in group.cases if verdicts[name][case.id] is not None]
            write(f"\n{name} failures ({len(failed)}): {', '.join(failed)}\n")

    write("\nSpeed of email2ticket (seconds):\n")
    for label, seconds in timings(corpus):
        write(f"  {seconds:7.3f}  {label}\n")
    return not failures


def _safe_judge(run: Parser, case: Case) -> str | None:
    try:
        return judge(case, run(case))
    except Exception as exc:  # a peer crashing on a case fails that case, not the benchmark
        return f"raised {type(exc).__name__}: {exc}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help=f"default: {DEFAULT_CORPUS}")
    parser.add_argument("--no-peers", action="store_true", help="only email2ticket")
    parser.add_argument("--peer-failures", action="store_true", help="also list the peers' failures")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # talon's html5lib warns about every Outlook "o:p" tag
    if not (args.corpus / "reply_pairs.jsonl").is_file():
        print(f"no corpus at {args.corpus} (reply_pairs.jsonl); pass --corpus DIR", file=sys.stderr)
        return 2
    report(args.corpus, with_peers=not args.no_peers, peer_failures=args.peer_failures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
