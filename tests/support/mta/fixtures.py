"""pytest fixtures for the MTA tests (tests/conftest.py registers this module as a plugin).

  mta_install      session: the non-editable install of this checkout that every MTA runs
  postfix          module: a running private Postfix (stopped and deleted at the end, even on failure)
  exim             module: a running private Exim (the same)
  make_mta_desk    function: make_mta_desk(mta, database_url) -> MtaDesk, email2ticket configured for one test

Without root these tests skip; under CI (CI=true) a missing prerequisite fails them instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.desk import Desk
from support.run import Runner

from .exim import EximInstance
from .instance import MtaInstance
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


class PipeUserRunner(Runner):
    """An installed script run as the MTAs run the pipe: as the pipe user, from /, with a minimal environment."""

    def __init__(self, script: Path) -> None:
        super().__init__(script, Path("/nonexistent"))

    def base_env(self) -> dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}

    def command(self, args: tuple[str, ...]) -> tuple[str, ...]:
        return (str(self.script), *args)  # the install's own interpreter, from the script's #! line

    def options(self) -> dict[str, Any]:
        return {"cwd": "/", **as_user(PIPE_USER)}


class MtaDesk(Desk):
    """email2ticket as one MTA test configures it: the MTA's configuration file (naming the database, logging to
    the MTA's state directory), admin commands run by the install as the pipe user; mail comes in by SMTP."""

    def __init__(self, install: Install, mta: MtaInstance, url: str, *, init: bool) -> None:
        self.install, self.mta = install, mta
        log_file = mta.state / "deliver.log"
        super().__init__(
            url, PipeUserRunner(install.admin), config=mta.config_toml, url_in_config=True, log_file=log_file, init=init
        )

    def configure(self, **changes: Any) -> None:
        """Write the config file every delivery reads (so a change applies to the next delivery)."""
        super().configure(**changes)
        self.mta.config_toml.chmod(0o644)


MakeMtaDesk = Callable[..., MtaDesk]


@pytest.fixture
def make_mta_desk(mta_install: Install, request: pytest.FixtureRequest) -> Iterator[MakeMtaDesk]:
    """make_mta_desk(mta, database_url, init=True): configure email2ticket for this test (a SQLite file in the
    MTA's state directory when database_url is "sqlite"), and `init` it. Each MTA it was used with has an empty
    queue after the test, whatever happened."""
    used: list[MtaInstance] = []

    def factory(mta: MtaInstance, database_url: str, *, init: bool = True) -> MtaDesk:
        if database_url == "sqlite":
            name = "".join(c if c.isalnum() else "_" for c in request.node.name)[:60]
            database_url = f"sqlite:///{mta.state / name}.db"
        used.append(mta)
        return MtaDesk(mta_install, mta, database_url, init=init)

    yield factory
    for mta in dict.fromkeys(used):
        mta.delete_queue()
