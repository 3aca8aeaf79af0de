"""Meeting another local user's files: root without root's powers, and files that OTHER_USER owns.

What email2ticket does with a file another user owns (a stale socket it may not remove, a directory it may
not write, a socket it must not trust) needs a second user. The interpreter running the tests may lie
under root's 0700 home, out of an unprivileged account's reach, so the executable runs as root with
every capability dropped (setpriv): the kernel then checks file permissions as for any user, and the
files belong to OTHER_USER, a system account made here. Needs root and setpriv: skipped without them,
a failure in CI.
"""

from __future__ import annotations

import os
import pwd
import shutil

import pytest

OTHER_USER = "e2t-test"


def other_user() -> pwd.struct_passwd:
    """OTHER_USER's passwd entry (the account is made when missing); skips (fails in CI) unless root."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        reason = "needs root and setpriv to stand for another local user"
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    from support.servers.pgserver import _ensure_os_user

    return _ensure_os_user(OTHER_USER)


def powerless(argv: list[str]) -> list[str]:
    """`argv` run as root without any capability: no reading, writing or removing other users' files."""
    return ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--", *argv]
