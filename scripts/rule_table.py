#!/usr/bin/env python3
"""Write README.md's rule table from the rule objects, so the documentation cannot drift from the chain.

The chain's table (lib/email2ticket/rules/chain.py) is the one list of rules. This rewrites the table under
"### The rules, in the order they are checked" with their names and descriptions, in the chain's order; a
rule's `see` becomes a link to that README section. tests/rules/test_rule_table.py fails when the README
and the objects disagree.

    scripts/rule_table.py            rewrite README.md
    scripts/rule_table.py --check    exit 1 if README.md is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "lib"))

from email2ticket.rules.base import Rule  # noqa: E402
from email2ticket.rules.chain import RULES  # noqa: E402

README = REPO / "README.md"
HEADING = "### The rules, in the order they are checked"
HEADER = ("| rule | what it checks |", "|---|---|")


def anchor(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")


def row(rule: Rule) -> str:
    link = f" ([{rule.see}](#{anchor(rule.see)}))" if rule.see else ""
    return f"| `{rule.name}` | {rule.description}{link} |"


def table(rules: Iterable[Rule] = RULES) -> list[str]:
    return [*HEADER, *(row(rule) for rule in rules)]


def rewrite(readme: str, rules: Iterable[Rule] = RULES) -> str:
    """The README with the rule table under HEADING replaced (the table ends at the first blank line)."""
    lines = readme.split("\n")
    start = lines.index(HEADER[0], lines.index(HEADING))
    end = lines.index("", start)
    return "\n".join([*lines[:start], *table(rules), *lines[end:]])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only check: exit 1 if README.md is out of date")
    args = parser.parse_args(argv)
    current = README.read_text(encoding="utf-8")
    wanted = rewrite(current)
    if current == wanted:
        return 0
    if args.check:
        print(f"{README}: the rule table differs from the rules; run scripts/rule_table.py", file=sys.stderr)
        return 1
    README.write_text(wanted, encoding="utf-8")
    print(f"{README}: rule table rewritten ({len(RULES)} rules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
