"""Every real-world message in ../shared/corpus delivers without a crash and without a 75.

The messages run through the same entry point the executable uses (`cli.deliver.run`, in-process to
keep ~400 deliveries quick), on SQLite and on PostgreSQL. Broken MIME, wrong charsets, bounces and
torture tests must all end as a ticket, a comment or a documented data error, never a deferral.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from email2ticket.cli.deliver import run
from support.corpus import corpus_messages

MESSAGES = corpus_messages()


@pytest.mark.slow
@pytest.mark.skipif(not MESSAGES, reason="../shared/corpus is not beside the checkout")
def test_every_corpus_message_delivers(database_url: str, tmp_path: Path) -> None:
    from email2ticket.store.admin import AdminStore

    AdminStore(database_url).init()
    config = tmp_path / "config.toml"
    config.write_text('[logging]\ntarget = "none"\n')
    outcomes: dict[int, list[str]] = {}
    for path in MESSAGES:
        argv = ["--database-url", database_url, "--sender", "corpus@example.org"]
        code = run(argv, io.BytesIO(path.read_bytes()), {"EMAIL2TICKET_CONFIG": str(config)})
        assert code != 75, f"{path}: deferred (see stderr)"
        outcomes.setdefault(code, []).append(path.name)
    assert set(outcomes) <= {0, 65}, {code: names[:5] for code, names in outcomes.items()}
    assert len(outcomes.get(0, [])) > 0.9 * len(MESSAGES)
