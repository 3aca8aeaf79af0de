"""The web admin in a real browser: headless Chromium from Debian's packages, driven by Selenium through the system
chromedriver, against the real `email2ticket web` started as a process, with mail delivered by the real
bin/email2ticket-deliver.

Selenium Manager never runs (the driver's path is given), so nothing is downloaded. Without Chromium these tests
skip, except under CI=true, where they fail: scripts/test installs chromium and chromium-driver as root.
Screenshots of every page go to a directory printed at the start; a few are copied to docs/screenshots/ by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.executables import ADMIN, child_env
from support.mail import mail

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PASSWORD = "correct horse battery staple"
XSS = "<img src=x onerror=alert(1)>"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        reason = f"{', '.join(missing)} missing: apt-get install chromium chromium-driver (scripts/test does as root)"
        if _in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-breakpad",
        "--disable-crash-reporter",
        "--password-store=basic",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(
        executable_path=str(CHROMEDRIVER), log_output=str(tmp_path_factory.mktemp("chromedriver") / "log")
    )
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("web-screenshots")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # past the output capture, so that the run shows it
            reporter.write_line(f"\nweb admin screenshots: {directory}")
    return directory


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class WebServer:
    """`email2ticket --database-url URL web --listen 127.0.0.1:PORT`, in its own process group, stopped by SIGTERM."""

    def __init__(self, url: str, home: Path) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = home / "web.log"
        argv = [sys.executable, str(ADMIN), "--database-url", url, "web", "--listen", f"127.0.0.1:{self.port}"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=child_env(home),
                cwd=home,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"email2ticket web exited with {self.process.returncode}:\n{self.log.read_text()}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.base}/login", timeout=2) as response:
                if response.status == 200:
                    return
            time.sleep(0.2)
        raise AssertionError(f"email2ticket web did not answer within {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


@pytest.fixture
def site(sqlite_url: str, run_admin: Any, child_home: Path) -> Iterator[WebServer]:
    added = run_admin(
        "--database-url", sqlite_url, "web-user", "add", "admin", "--password-stdin", stdin=f"{PASSWORD}\n".encode()
    )
    assert added.returncode == 0, added
    server = WebServer(sqlite_url, child_home)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def desk(sqlite_url: str, run_deliver: Any) -> Callable[[bytes], dict[str, Any]]:
    """Deliver through the real bin/email2ticket-deliver; its JSON outcome."""

    def deliver(raw: bytes) -> dict[str, Any]:
        result = run_deliver("--database-url", sqlite_url, "--json", stdin=raw)
        assert result.returncode == 0, result
        return dict(json.loads(result.stdout))

    return deliver


class Page:
    """The browser on the site: open, fill, click, read, and a screenshot of each page visited."""

    def __init__(self, driver: Any, site: WebServer, shots: Path, test: str) -> None:
        self.driver, self.site, self.shots, self.test = driver, site, shots, test
        driver.delete_all_cookies()

    def open(self, path: str) -> None:
        self.driver.get(self.site.base + path)

    def by(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def click(self, target: Any) -> None:
        """Click a link or a submit button (a CSS selector or an element) and wait until the next page has loaded:
        the old page's window carries a mark that a new document does not have."""
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait

        element = self.by(target) if isinstance(target, str) else target
        self.driver.execute_script("window.e2tOldPage = true")

        def loaded(driver: Any) -> bool:
            try:
                return bool(driver.execute_script("return !window.e2tOldPage && document.readyState === 'complete'"))
            except WebDriverException:  # in the middle of the navigation
                return False

        element.click()
        WebDriverWait(self.driver, 30).until(loaded)

    def text(self) -> str:
        return str(self.by("body").text)

    def shot(self, name: str) -> Path:
        path = self.shots / f"{self.test}-{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def login(self) -> None:
        self.open("/")
        assert self.driver.current_url == self.site.base + "/login"
        self.shot("login")
        self.by("#name").send_keys("admin")
        self.by("#password").send_keys(PASSWORD)
        self.click("form[action='/login'] button")
        assert self.driver.current_url == self.site.base + "/", self.text()
        assert "Overview" in self.by("h1").text

    def no_alert(self) -> None:
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        with pytest.raises(TimeoutException):
            WebDriverWait(self.driver, 1.5).until(expected_conditions.alert_is_present())

    def console_errors(self) -> list[str]:
        """What the browser complained about: a blocked inline style or script would show up here."""
        return [entry["message"] for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]


@pytest.fixture
def page(browser: Any, site: WebServer, shots: Path, request: pytest.FixtureRequest) -> Page:
    return Page(browser, site, shots, request.node.name.removeprefix("test_"))


def test_restrict_replies_changed_in_the_form_is_obeyed_by_delivery(
    page: Page, desk: Callable[..., dict[str, Any]]
) -> None:
    assert desk(mail("Printer jam", sender="alice@example.org"))["action"] == "create"
    stranger_reply = mail("RE: Printer jam [Ticket #1]", "Me too.\n", sender="bob@elsewhere.example")
    assert desk(stranger_reply)["action"] == "create"  # restrict_replies is on: a new ticket
    page.login()
    page.shot("overview")
    page.open("/settings")
    label = page.by("label.check input#restrict_replies").find_element("xpath", "..")
    assert label.text == "Restrict Replies to Technicians and the Requester of the Ticket"
    box = page.by("#restrict_replies")
    assert box.is_selected()
    box.click()
    page.shot("settings")
    page.click("form.settings button[type=submit]")
    assert "Saved 1 setting(s)." in page.text()
    assert not page.by("#restrict_replies").is_selected()
    outcome = desk(mail("RE: Printer jam [Ticket #1]", "Still broken here.\n", sender="carol@elsewhere.example"))
    assert (outcome["action"], outcome["ticket"]) == ("update", 1)
    assert any("restrict_replies is off" in r for r in outcome["reasons"])
    page.open("/tickets/1")
    assert "Still broken here." in page.text()


def test_a_separator_added_in_the_form_cuts_the_live_test(page: Page) -> None:
    page.login()
    page.open("/separators")
    page.by("form[action='/separators/add'] input[name=text]").send_keys("=== answer above ===")
    page.click("form[action='/separators/add'] button")
    assert "Added separator '=== answer above ==='." in page.text()
    page.by("#reply").send_keys("Thanks, all good now.\n\n=== answer above ===\nOld conversation\n")
    page.click("form[action='/separators/test'] button")
    assert "Cut at line 3, where the separator === answer above === matched." in page.by("#result").text
    assert page.by("#comment").text == "Thanks, all good now."
    assert "=== answer above ===" in page.by(".cutline").text
    page.driver.execute_script("window.scrollTo(0, arguments[0].getBoundingClientRect().top - 280)", page.by("#result"))
    page.shot("separators")


def test_releasing_held_mail_opens_its_ticket(page: Page, desk: Callable[..., dict[str, Any]]) -> None:
    held = desk(mail("Server room too hot", sender="dave@example.org", headers={"X-Spam-Flag": "YES"}))
    assert held["action"] == "hold"
    page.login()
    page.open("/messages?action=hold")
    page.shot("deliveries")
    page.click("table.messages tbody a")
    page.shot("message")
    page.click("form[action$='/release'] button")
    assert "released past spam-flag" in page.text() and "(create, ticket #1)" in page.text()
    page.shot("released")
    page.click("a[href='/tickets/1']")
    assert page.by("#subject").text == "Server room too hot"
    page.shot("ticket")


def test_a_hostile_subject_runs_no_script(page: Page, desk: Callable[..., dict[str, Any]]) -> None:
    body = f"<p>{XSS}</p><script>alert(2)</script>"
    desk(mail(XSS, body, sender="mallory@evil.example", content_type="text/html; charset=utf-8"))
    page.login()
    for path in ("/tickets/1", "/tickets", "/messages", "/messages/1", "/"):
        page.open(path)
        page.no_alert()
        assert page.all("img[src='x']") == [] and page.all("main script") == []
    page.open("/tickets/1")
    assert page.by("#subject").text == XSS
    page.shot("hostile-ticket")
    assert page.console_errors() == []


def test_every_page_renders_without_errors(page: Page, desk: Callable[..., dict[str, Any]]) -> None:
    desk(mail("Printer jam", sender="alice@example.org"))
    desk(mail("VPN down", sender="bob@example.org"))
    desk(mail("Pills", sender="spam@bad.example", headers={"X-Spam-Flag": "YES"}))
    page.login()
    for name in ("Email Settings", "Users", "Deliveries", "Quarantine", "Tickets"):
        link = next(a for a in page.all("nav.main a") if a.text == name)
        page.click(link)
        page.shot(name.lower().replace(" ", "-"))
    for tab in ("Reply Separators", "Outgoing Notifications"):
        page.open("/settings")
        page.click(next(a for a in page.all("nav.tabs a") if a.text == tab))
        page.shot(tab.lower().replace(" ", "-"))
    page.open("/")
    legend = page.by("ul.legend").text
    assert "create 2" in legend and "hold 1" in legend
    assert 2 <= len(page.all("svg.chart rect.bar")) <= 3  # one piece per action and hour
    page.shot("overview-with-mail")
    assert page.console_errors() == []
