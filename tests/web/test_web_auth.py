"""Who gets in: sessions, CSRF, login throttling, cookies and security headers, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from starlette.routing import Mount, Route

from email2ticket.store.accounts import AccountStore
from email2ticket.web.app import WebAdmin
from email2ticket.web.sessions import CSP, serializer
from email2ticket.web.throttle import LoginThrottle
from web.webclient import PASSWORD, Admin, csrf_of


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}:]+:str\}", "add", re.sub(r"\{[^}]+:int\}", "1", path))


def test_every_route_but_the_login_page_needs_a_session(web: WebAdmin, make_admin: Callable[..., Admin]) -> None:
    visitor = make_admin(web, login=False)
    routes = [r for r in web.starlette.routes if isinstance(r, Route)]
    assert len(routes) > 25
    for route in routes:
        path = _concrete(route.path)
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            response = visitor.http.request(method, path, data={"csrf": "x"} if method == "POST" else None)
            if route.path == "/login":
                assert response.status_code in (200, 403), (method, path)  # the form, or a POST without a token
                continue
            assert response.status_code == 303, (method, path, response.status_code)
            assert response.headers["location"] == "/login", (method, path)
    assert any(isinstance(r, Mount) and r.path == "/static" for r in web.starlette.routes)
    style = visitor.get("/static/style.css")
    assert style.status_code == 200 and "text/css" in style.headers["content-type"]


def test_root_leads_to_the_login_form_and_after_login_to_the_overview(
    web: WebAdmin, make_admin: Callable[..., Admin]
) -> None:
    visitor = make_admin(web, login=False)
    first = visitor.get("/")
    assert (first.status_code, first.headers["location"]) == (303, "/login")
    form = visitor.follow(first)
    assert form.status_code == 200 and 'action="/login"' in form.text and 'type="password"' in form.text
    signed_in = visitor.login()
    assert (signed_in.status_code, signed_in.headers["location"]) == (303, "/")
    overview = visitor.follow(signed_in)
    assert overview.status_code == 200 and "<h1>Overview</h1>" in overview.text
    for path in ("/settings", "/separators", "/notifications", "/users", "/messages", "/quarantine", "/tickets"):
        assert f'href="{path}"' in overview.text
    assert visitor.get("/login").headers["location"] == "/"  # signed in: the form is not shown again


def test_login_needs_the_csrf_token_of_its_own_session(web: WebAdmin, make_admin: Callable[..., Admin]) -> None:
    visitor = make_admin(web, login=False)
    credentials = {"name": "admin", "password": PASSWORD}
    assert visitor.http.post("/login", data=credentials).status_code == 403  # no session, no token
    token = csrf_of(visitor.get("/login").text)
    assert visitor.http.post("/login", data={**credentials, "csrf": "forged"}).status_code == 403
    assert visitor.http.post("/login", data=credentials).status_code == 403  # token missing from the form
    other = make_admin(web, login=False)
    other_token = csrf_of(other.get("/login").text)
    assert visitor.http.post("/login", data={**credentials, "csrf": other_token}).status_code == 403
    assert visitor.http.post("/login", data={**credentials, "csrf": token}).status_code == 303
    assert visitor.http.get("/login", params={"name": "admin", "password": PASSWORD}).status_code == 303  # no GET login


def test_wrong_password_and_unknown_account_get_the_same_answer(
    web: WebAdmin, make_admin: Callable[..., Admin]
) -> None:
    visitor = make_admin(web, login=False)
    wrong = visitor.login(password="not the password at all")
    unknown = visitor.login(name="nobody")
    assert wrong.status_code == unknown.status_code == 403
    assert "Wrong account name or password." in wrong.text and "Wrong account name or password." in unknown.text
    assert visitor.get("/").status_code == 303


def test_login_is_throttled_per_account(web: WebAdmin, make_admin: Callable[..., Admin]) -> None:
    guesser = make_admin(web, login=False, client=("203.0.113.7", 40000))
    for _ in range(5):
        assert guesser.login(password="guess guess guess").status_code == 403
    refused = guesser.login()  # even the right password, from anywhere, until the window passes
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert "Too many failed sign-ins" in refused.text
    assert make_admin(web, login=False, client=("198.51.100.1", 40000)).login().status_code == 429


def test_login_is_throttled_per_client(web: WebAdmin, make_admin: Callable[..., Admin]) -> None:
    AccountStore(web.state.admin).add("second", PASSWORD)
    sprayer = make_admin(web, login=False, client=("203.0.113.9", 40000))
    for n in range(20):
        assert sprayer.login(name=f"user{n}", password="spray spray spray").status_code == 403
    assert sprayer.login(name="second").status_code == 429
    assert make_admin(web, login=False, client=("198.51.100.2", 40000)).login(name="second").status_code == 303


def test_throttle_window_and_success() -> None:
    now = [1000.0]
    throttle = LoginThrottle(per_account=2, per_client=3, window=60, clock=lambda: now[0])
    throttle.failed("a", "c1")
    assert throttle.wait("a", "c1") == 0
    throttle.failed("a", "c2")
    assert throttle.wait("a", "c3") == pytest.approx(60)
    now[0] += 30
    assert throttle.wait("a", "c3") == pytest.approx(30)
    throttle.succeeded("a")
    assert throttle.wait("a", "c3") == 0
    for name in ("x", "y", "z"):
        throttle.failed(name, "c9")
    assert throttle.wait("fresh", "c9") == pytest.approx(60)
    now[0] += 61
    assert throttle.wait("fresh", "c9") == 0


def test_every_post_needs_the_csrf_token(admin: Admin, web: WebAdmin) -> None:
    before = web.state.admin.show_settings()
    form = {"restrict_replies": "off", "shown-restrict_replies": "on"}
    assert admin.http.post("/settings", data=form).status_code == 403
    assert admin.http.post("/settings", data={**form, "csrf": "x" * 43}).status_code == 403
    refused = admin.http.post("/logout", data={})
    assert refused.status_code == 403 and "Form refused" in refused.text
    assert web.state.admin.show_settings() == before
    assert admin.post("/settings", form).status_code == 303
    assert next(s for s in web.state.admin.show_settings() if s["name"] == "restrict_replies")["value"] == "off"
    assert admin.get("/logout").status_code == 405  # signing out changes state: POST only


def test_cookies_are_httponly_samesite_strict_and_secure_only_over_tls(
    make_web: Callable[..., WebAdmin], make_admin: Callable[..., Admin]
) -> None:
    plain = make_web(trusted_proxies=("10.0.0.5",))
    AccountStore(plain.state.admin).add("admin", PASSWORD)
    for client, proto, secure in (
        (("10.0.0.5", 1), "https", True),
        (("10.0.0.6", 1), "https", False),
        (("10.0.0.5", 1), None, False),
    ):
        visitor = make_admin(plain, login=False, client=client)
        headers = {"x-forwarded-proto": proto} if proto else {}
        cookie = visitor.get("/login", headers=headers).headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert ("Secure" in cookie) is secure, (client, proto, cookie)
        hsts = visitor.get("/static/style.css", headers=headers).headers.get("strict-transport-security")
        assert (hsts is not None) is secure


def test_forwarded_for_counts_only_from_the_trusted_proxy(
    make_web: Callable[..., WebAdmin], make_admin: Callable[..., Admin]
) -> None:
    app = make_web(trusted_proxies=("10.0.0.5",))
    AccountStore(app.state.admin).add("admin", PASSWORD)
    proxy = make_admin(app, login=False, client=("10.0.0.5", 1))
    for n in range(20):  # twenty clients behind the proxy, each failing once
        proxy.http.headers["x-forwarded-for"] = f"192.0.2.{n + 1}"
        assert proxy.login(name=f"u{n}", password="wrong wrong wrong").status_code == 403
    proxy.http.headers["x-forwarded-for"] = "192.0.2.200"
    assert proxy.login().status_code == 303  # not one client: the proxy's own address was never throttled
    liar = make_admin(app, login=False, client=("10.0.0.9", 1))
    for n in range(20):  # an untrusted client cannot dodge its count with a header
        liar.http.headers["x-forwarded-for"] = f"198.51.100.{n + 1}"
        liar.login(name=f"x{n}", password="wrong wrong wrong")
    assert liar.login().status_code == 429


def test_security_headers_on_pages_errors_and_files(admin: Admin) -> None:
    for path, status in (("/users", 200), ("/no/such/page", 404), ("/static/style.css", 200), ("/tickets/999", 404)):
        response = admin.get(path)
        assert response.status_code == status, path
        headers = response.headers
        assert headers["content-security-policy"] == CSP
        assert "script-src" not in CSP and "default-src 'none'" in CSP and "frame-ancestors 'none'" in CSP
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
    assert admin.get("/users").headers["cache-control"] == "no-store"
    assert "server" not in {k.lower() for k in admin.get("/users").headers}


def test_a_new_password_or_a_removed_account_ends_the_session(web: WebAdmin, admin: Admin) -> None:
    accounts = AccountStore(web.state.admin)
    assert admin.get("/users").status_code == 200
    accounts.set_password("admin", "another long password")
    assert admin.get("/users").headers["location"] == "/login"
    assert admin.login(password="another long password").status_code == 303
    accounts.remove("admin")
    assert admin.get("/users").headers["location"] == "/login"


def test_sessions_expire_and_forged_cookies_are_ignored(
    make_web: Callable[..., WebAdmin], make_admin: Callable[..., Admin], web: WebAdmin
) -> None:
    short = make_web(session_max=-1)
    assert make_admin(short).get("/users").headers["location"] == "/login"
    visitor = make_admin(web, login=False)
    forged: dict[str, Any] = {"account": 1, "version": 1, "since": 2_000_000_000, "csrf": "x" * 43}
    visitor.http.cookies.set("e2t_session", serializer(b"k" * 32).dumps(forged))
    assert visitor.get("/users").headers["location"] == "/login"


def test_logout_ends_the_session(admin: Admin) -> None:
    out = admin.post("/logout")
    assert (out.status_code, out.headers["location"]) == (303, "/login")
    assert "Signed out." in admin.follow(out).text
    assert admin.get("/users").headers["location"] == "/login"


def test_request_bodies_are_capped(admin: Admin) -> None:
    response = admin.post("/settings", {"restrict_replies": "x" * 300_000})
    assert response.status_code == 413
    assert admin.get("/users").status_code == 200
