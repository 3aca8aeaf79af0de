"""examples/config.toml as postfix/setup.sh and the guide use it: the admin edits the keys where they are.

setup.sh installs the example and sets a few keys by uncommenting their `# key = value` line; an admin
following postfix/README.md by hand does the same. So every such line must give a valid configuration
when uncommented, in the table the key belongs to, and what it suggests must work as documented.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from email2ticket.config.load import parse_config_file
from email2ticket.exits import ConfigurationError, ExitCode
from email2ticket.ops.postfix import lmtp_target

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "config.toml"
COMMENTED = re.compile(r"^# ?(\w+) = (.+)$")


def _commented_lines() -> list[tuple[int, str, str]]:
    """(line index, table, key) of each `# key = value` line, in the table it stands in."""
    found, table = [], ""
    for index, line in enumerate(EXAMPLE.read_text().splitlines()):
        if line.startswith("["):
            table = line.strip("[]")
        match = COMMENTED.match(line)
        if match:
            found.append((index, table, match.group(1)))
    return found


def _uncommented(index: int, tmp_path: Path) -> Path:
    lines = EXAMPLE.read_text().splitlines()
    lines[index] = COMMENTED.sub(r"\1 = \2", lines[index])
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_example_is_valid_as_it_is() -> None:
    assert parse_config_file(EXAMPLE).source == str(EXAMPLE)


@pytest.mark.parametrize(("index", "table", "key"), _commented_lines(), ids=lambda v: str(v))
def test_each_commented_key_is_valid_uncommented_where_it_stands(
    index: int, table: str, key: str, tmp_path: Path
) -> None:
    config = parse_config_file(_uncommented(index, tmp_path))
    section = getattr(config, table) if table else config
    assert getattr(section, key) is not None, (table, key)


def test_the_keys_setup_sh_sets_are_there_to_uncomment() -> None:
    """setup.sh's set_key uncomments the first `# key = ` line: it must be in the key's own table."""
    script = (REPO / "postfix" / "setup.sh").read_text()
    keys = set(re.findall(r"set_key ([a-z_]+) ", script))
    tables = {"database_url": "", "file": "logging", "key_file": "notifications", "from_address": "notifications"}
    tables |= {"socket": "service", "lmtp": "service", "socket_group": "service"}
    assert keys == set(tables)
    first = {}
    for _, table, key in _commented_lines():
        first.setdefault(key, table)
    assert {key: first.get(key) for key in keys} == {key: tables[key] for key in keys}


def test_the_suggested_lmtp_socket_is_the_one_postfix_reaches() -> None:
    """The LMTP path the example suggests is where the guide's transport (relative to Postfix's queue
    directory) leads, and not Postfix's private/ directory, where only Postfix's user may create a socket."""
    (index,) = [index for index, table, key in _commented_lines() if key == "lmtp"]
    suggested = COMMENTED.match(EXAMPLE.read_text().splitlines()[index])
    assert suggested is not None
    lmtp = suggested.group(2).strip('"')
    assert "/private/" not in lmtp
    assert lmtp == lmtp_target("unix:email2ticket/lmtp.sock", {})  # service.snippet's transport next-hop


def test_a_pasted_second_service_table_is_refused(tmp_path: Path) -> None:
    """Why the guide says to edit the existing [service] keys: a second table makes the file invalid, and every
    delivery defers (75) until it is fixed."""
    pasted = tmp_path / "config.toml"
    pasted.write_text(EXAMPLE.read_text() + '\n[service]\nsocket = "/run/email2ticket/deliver.sock"\n')
    with pytest.raises(ConfigurationError) as raised:
        parse_config_file(pasted)
    assert raised.value.exit_code == ExitCode.TEMPFAIL
