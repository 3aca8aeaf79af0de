"""Where the shared e-mail corpus lives and which of its files are complete raw messages.

The corpus (real-world mail other projects wrote for their own test suites) is checked out beside the
repository as ``shared/corpus`` (``<dir>/main`` is this repository, in CI too); it is test data and is not
vendored.  Tests that need it skip when it is missing.  See ``shared/corpus/README.md`` and ``MANIFEST.tsv``.
"""

from pathlib import Path

CORPUS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"

MISSING_REASON = f"e-mail corpus not found at {CORPUS_DIR} (expected shared/corpus beside the checkout)"

# Folders holding complete messages (headers and body).  The reply-parser folders (github_email_reply_parser,
# zapier_..., crisp_..., willdurand_..., mail_parser_reply, derived) and talon's signature samples hold bare
# bodies even where MANIFEST.tsv calls them raw-email; the zammad/talon .yml/.html files are expectations.
_FULL_MESSAGE_GLOBS = (
    "zammad/mail/*.box",
    "otobo/**/*.box",
    "otobo/**/*.eml",
    "flanker/**/*.eml",
    "cpython_test_email/*.txt",
    "django_helpdesk/**/*.eml",
    "talon/**/*.eml",
)


def corpus_available() -> bool:
    return CORPUS_DIR.is_dir()


def corpus_messages() -> list[Path]:
    """Paths of every complete raw message in the corpus, sorted; [] when the corpus is missing."""
    if not corpus_available():
        return []
    found = {path for pattern in _FULL_MESSAGE_GLOBS for path in CORPUS_DIR.glob(pattern) if path.is_file()}
    return sorted(found)


def corpus_files() -> list[Path]:
    """Every file in the corpus (bare bodies, expectations, HTML snippets too), for never-crash tests."""
    if not corpus_available():
        return []
    return sorted(path for path in CORPUS_DIR.rglob("*") if path.is_file())
