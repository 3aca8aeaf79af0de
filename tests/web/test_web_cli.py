"""`email2ticket web-user ...` and `email2ticket web`, run as the real executable; and the pipe's start-up, which
must not pay for any of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from email2ticket.store.accounts import AccountStore
from email2ticket.store.admin import AdminStore
from support.mail import mail

PASSWORD = b"a long enough password\n"


def test_web_user_add_list_passwd_remove(web_url: str, run_admin: Any) -> None:
    def web_user(*args: str, stdin: bytes = b"") -> Any:
        return run_admin("--database-url", web_url, "web-user", *args, stdin=stdin)

    added = web_user("add", "admin", "--password-stdin", stdin=PASSWORD)
    assert (added.returncode, added.stdout_text) == (0, "web account 'admin' added\n"), added
    engine = create_engine(web_url)
    with engine.connect() as connection:
        digest = connection.execute(text("SELECT password_hash FROM web_accounts")).scalar_one()
    engine.dispose()
    assert digest.startswith("$argon2id$v=19$m=65536,t=3,p=4$")  # RFC 9106's parameters, never the password
    accounts = AccountStore(AdminStore(web_url))
    assert accounts.authenticate("admin", "a long enough password") is not None  # the line without its newline
    assert accounts.authenticate("admin", "a long enough password\n") is None
    again = web_user("add", "admin", "--password-stdin", stdin=PASSWORD)
    assert again.returncode == 1 and "there is already a web account 'admin'" in again.stderr_text
    short = web_user("add", "other", "--password-stdin", stdin=b"short\n")
    assert short.returncode == 1 and "at least 12 characters" in short.stderr_text
    bad_name = web_user("add", "../x", "--password-stdin", stdin=PASSWORD)
    assert bad_name.returncode == 1 and "not a usable account name" in bad_name.stderr_text
    no_tty = web_user("add", "other")
    assert no_tty.returncode == 1 and "--password-stdin" in no_tty.stderr_text
    listed = json.loads(web_user("list", "--json").stdout)
    assert [a["name"] for a in listed] == ["admin"] and listed[0]["last_login_at"] is not None
    assert "admin" in web_user("list").stdout_text
    changed = web_user("passwd", "admin", "--password-stdin", stdin=b"another long password\r\n")
    assert changed.returncode == 0, changed
    assert accounts.authenticate("admin", "another long password") is not None
    assert web_user("remove", "admin").returncode == 0
    missing = web_user("remove", "admin")
    assert missing.returncode == 1 and "there is no web account 'admin'" in missing.stderr_text
    assert "no web account yet" in web_user("list").stdout_text


def test_web_refuses_a_bad_listen_address(web_url: str, run_admin: Any) -> None:
    for listen in ("nonsense", "127.0.0.1:99999", "example.org:80"):
        result = run_admin("--database-url", web_url, "web", "--listen", listen)
        assert result.returncode == 75 and "--listen: expected HOST:PORT" in result.stderr_text, result
    proxy = run_admin("--database-url", web_url, "web", "--trusted-proxy", "the proxy")
    assert proxy.returncode == 75 and "--trusted-proxy" in proxy.stderr_text


WEB_MODULES = ("email2ticket.web", "starlette", "jinja2", "uvicorn", "itsdangerous", "multipart", "argon2")

PIPE_PROBE = """
import io, json, sys
from email2ticket.cli.deliver import run
code = run(sys.argv[1:], io.BytesIO(sys.stdin.buffer.read()), {})
loaded = sorted({m.split(".")[0] if not m.startswith("email2ticket.") else m for m in sys.modules})
print(json.dumps({"code": code, "loaded": loaded}), file=sys.stderr)
"""

ADMIN_PROBE = """
import json, sys
from email2ticket.cli.admin import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "loaded": sorted(sys.modules)}), file=sys.stderr)
"""


def _loaded(result: Any) -> tuple[int, list[str]]:
    probe = json.loads(result.stderr_text.strip().splitlines()[-1])
    return probe["code"], probe["loaded"]


def test_delivery_never_imports_the_web_admin(web_url: str, make_runner: Any, tmp_path: Path) -> None:
    script = tmp_path / "probe.py"
    script.write_text(PIPE_PROBE)
    result = make_runner(script)("--database-url", web_url, stdin=mail("Printer jam"))
    code, loaded = _loaded(result)
    assert code == 0, result
    assert [m for m in loaded if m.startswith(WEB_MODULES)] == []


def test_web_user_needs_no_web_extra(web_url: str, make_runner: Any, tmp_path: Path) -> None:
    script = tmp_path / "probe.py"
    script.write_text(ADMIN_PROBE)
    result = make_runner(script)("--database-url", web_url, "web-user", "list")
    code, loaded = _loaded(result)
    assert code == 0, result
    assert [m for m in loaded if m.startswith(WEB_MODULES[:-1])] == []


MISSING_EXTRA = """
import sys
class Missing:  # as if the web extra were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("starlette", "uvicorn", "jinja2", "itsdangerous", "multipart"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Missing())
from email2ticket.cli.admin import main
sys.exit(main(sys.argv[1:]))
"""


def test_web_without_the_extra_says_how_to_install_it(web_url: str, make_runner: Any, tmp_path: Path) -> None:
    script = tmp_path / "probe.py"
    script.write_text(MISSING_EXTRA)
    result = make_runner(script)("--database-url", web_url, "web")
    assert result.returncode == 1, result
    assert "the web admin needs the web extra" in result.stderr_text
    assert "pip install 'email2ticket[web]'" in result.stderr_text
    listed = make_runner(script)("--database-url", web_url, "web-user", "list")
    assert listed.returncode == 0, listed
