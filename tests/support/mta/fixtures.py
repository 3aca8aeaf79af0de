"""pytest fixtures for the MTA tests (test modules load them with `pytest_plugins = ["support.mta.fixtures"]`).

  mta_install      session: the non-editable install of this checkout that every MTA runs
  postfix          module: a running private Postfix (stopped and deleted at the end, even on failure)
  exim             module: a running private Exim (the same)
  make_desk        function: desk(mta, database_url) -> Desk, email2ticket configured for one test

Without root these tests skip; under CI (CI=true) a missing prerequisite fails them instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from .exim import EximInstance
from .postfix import PostfixDistribution, PostfixInstance
from .system import PIPE_USER, Install, MtaUnavailable, as_user, build_install, require_root, world_readable_dir


def _unavailable(exc: Exception) -> None:
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
        pytest.fail(f"MTA tests cannot run: {exc}", pytrace=False)
    pytest.skip(f"MTA tests cannot run: {exc}")


@pytest.fixture(scope="session")
def mta_tmp() -> Iterator[Path]:
    """One world-readable directory under /tmp for the session's install and servers."""
    try:
        require_root()
    except MtaUnavailable as exc:
        _unavailable(exc)
    path = world_readable_dir("e2t-mta-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def mta_install(mta_tmp: Path) -> Install:
    target = mta_tmp / "install"
    target.mkdir(mode=0o755)
    try:
        return build_install(target)
    except MtaUnavailable as exc:
        _unavailable(exc)
        raise


@pytest.fixture(scope="session")
def postfix_dist(mta_tmp: Path) -> PostfixDistribution:
    try:
        return PostfixDistribution.unpack(mta_tmp / "postfix-package")
    except MtaUnavailable as exc:
        _unavailable(exc)
        raise


@pytest.fixture(scope="module")
def postfix(postfix_dist: PostfixDistribution, mta_install: Install, mta_tmp: Path) -> Iterator[PostfixInstance]:
    instance = PostfixInstance(postfix_dist, world_readable_dir("e2t-postfix-"), mta_install)
    try:
        instance.start()
        yield instance
    finally:
        instance.close()


@pytest.fixture(scope="module")
def exim(mta_install: Install) -> Iterator[EximInstance]:
    try:
        instance = EximInstance(world_readable_dir("e2t-exim-"), mta_install)
    except MtaUnavailable as exc:
        _unavailable(exc)
        raise
    try:
        instance.start()
        yield instance
    finally:
        instance.close()


class Mta(Protocol):
    config_toml: Path
    state: Path


class Desk:
    """email2ticket as one test configures it: its database, its config file, admin commands as the pipe user."""

    def __init__(self, install: Install, mta: Mta, database_url: str) -> None:
        self.install, self.mta, self.database_url = install, mta, database_url
        self.log_file = mta.state / "deliver.log"
        self.configure()

    def configure(self, **settings: int | float | str) -> None:
        """Write the config file every delivery reads (so a change applies to the next delivery)."""
        lines = [f"database_url = {json.dumps(self.database_url)}"]
        lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
        lines += ["[logging]", 'target = "file"', f"file = {json.dumps(str(self.log_file))}"]
        self.mta.config_toml.write_text("\n".join(lines) + "\n")
        self.mta.config_toml.chmod(0o644)

    def admin(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The installed `email2ticket --config ...` run as the pipe user (SQLite files stay its own)."""
        proc = subprocess.run(
            [str(self.install.admin), "--config", str(self.mta.config_toml), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd="/",
            env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"},
            **as_user(PIPE_USER),  # type: ignore[arg-type]
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"email2ticket {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.admin(*args, "--json").stdout)

    def tickets(self) -> list[dict[str, Any]]:
        return list(self.json("tickets", "list"))

    def messages(self, action: str | None = None) -> list[dict[str, Any]]:
        extra = ("--action", action) if action else ()
        return list(self.json("messages", "list", *extra))


@pytest.fixture
def make_desk(mta_install: Install, request: pytest.FixtureRequest) -> Callable[[Mta, str], Desk]:
    """desk(mta, database_url): configure email2ticket for this test (SQLite file in the MTA's state dir
    when database_url is "sqlite"), and `init` it."""

    def factory(mta: Mta, database_url: str, *, init: bool = True) -> Desk:
        if database_url == "sqlite":
            name = "".join(c if c.isalnum() else "_" for c in request.node.name)[:60]
            database_url = f"sqlite:///{mta.state / name}.db"
        desk = Desk(mta_install, mta, database_url)
        if init:
            desk.admin("init")
        return desk

    return factory
