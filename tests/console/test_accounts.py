"""Host accounts over HTTP: sign-in, session cookie, CSRF, rate limit, admin endpoints."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
from yarl import URL

from livecommerce.api import contract
from livecommerce.auth import session as session_mod
from livecommerce.config import Settings
from livecommerce.console import signin_limit
from livecommerce.console.passwords import hash_password, verify_password
from tests.console.conftest import Console
from tests.support import http


def test_password_hash_verifies_only_its_password() -> None:
    """scrypt hashes are salted, verify the right password and refuse others or garbage."""
    a, b = hash_password("correct horse"), hash_password("correct horse")
    assert a != b
    assert a.startswith("scrypt$")
    assert verify_password(a, "correct horse")
    assert not verify_password(a, "correct horsE")
    assert not verify_password("md5$abc", "correct horse")
    assert not verify_password("scrypt$x$y", "correct horse")


def test_session_cookie_flags() -> None:
    """The cookie is HttpOnly and SameSite=Lax always, Secure only outside development."""
    dev = session_mod.session_cookie("v", 60, secure=False)
    prod = session_mod.session_cookie("v", 60, secure=True)
    for cookie in (dev, prod):
        assert "HttpOnly" in cookie
        assert "SameSite=Lax" in cookie
        assert "Path=/" in cookie
    assert "Secure" not in dev
    assert prod.endswith("; Secure")


async def test_sign_in_sets_cookie_and_session_drives_host_api(
    console: Console, browser_session: aiohttp.ClientSession
) -> None:
    """A signed-in browser calls host routes with its cookie; writes need the CSRF token."""
    acct = await console.account()
    async with browser_session.post(
        console.url + "/api/console/session", json={"name": acct.name, "password": acct.password}
    ) as resp:
        assert resp.status == 201
        cookie = resp.headers["Set-Cookie"]
        body = await resp.json()
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie
    assert body["host"] == {"id": acct.id, "name": acct.name}
    csrf = body["csrf_token"]
    status, me = await console.call(browser_session, "GET", "/api/console/session")
    assert status == 200
    assert me["host"]["id"] == acct.id
    assert me["csrf_token"] == csrf
    status, err = await console.call(browser_session, "POST", "/api/rooms", json={"title": "x"})
    assert status == 403
    assert err["error"]["code"] == "csrf_failed"
    status, err = await console.call(
        browser_session, "POST", "/api/rooms", json={"title": "x"},
        headers={"X-CSRF-Token": "0" * 64},
    )  # fmt: skip
    assert status == 403
    assert err["error"]["code"] == "csrf_failed"
    status, room = await console.call(
        browser_session, "POST", "/api/rooms", json={"title": "x"}, headers={"X-CSRF-Token": csrf}
    )
    assert status == 201
    assert room["host_id"] == acct.id
    # The bearer token keeps working, without CSRF (no cookie involved).
    status, _ = await http(
        "POST", console.url + "/api/rooms", json={"title": "y"},
        headers={"Authorization": f"Bearer {acct.token}"},
    )  # fmt: skip
    assert status == 201
    # Sign out needs the CSRF token too, then the cookie is gone.
    status, _ = await console.call(browser_session, "DELETE", "/api/console/session")
    assert status == 403
    status, out = await console.call(
        browser_session, "DELETE", "/api/console/session", headers={"X-CSRF-Token": csrf}
    )
    assert status == 200
    assert out == {"signed_out": True}
    status, err = await console.call(browser_session, "GET", "/api/console/session")
    assert status == 401


async def test_forged_or_foreign_sessions_are_refused(console: Console) -> None:
    """A tampered cookie is 401; a viewer token as cookie is 403; a foreign Origin can't sign in."""
    acct = await console.account()
    url = console.url + "/api/console/session"
    status, _ = await http("GET", url, headers={"Cookie": "lc_session=" + acct.token + "x"})
    assert status == 401
    _, viewer = await http("POST", console.url + "/api/tokens/viewer")
    assert isinstance(viewer, dict)
    status, _ = await http("GET", url, headers={"Cookie": f"lc_session={viewer['token']}"})
    assert status == 403
    status, err = await http(
        "POST", url, json={"name": acct.name, "password": acct.password},
        headers={"Origin": "http://evil.example"},
    )  # fmt: skip
    assert status == 403, err


async def test_failed_sign_ins_are_rate_limited(console: Console) -> None:
    """After 5 wrong passwords for a name, even the right one is refused with 429."""
    acct = await console.account()
    url = console.url + "/api/console/session"
    for _ in range(signin_limit.MAX_PER_NAME):
        status, err = await http("POST", url, json={"name": acct.name, "password": "wrong-pass"})
        assert status == 401
        assert isinstance(err, dict)
        assert err["error"]["code"] == "bad_credentials"
    status, err = await http("POST", url, json={"name": acct.name, "password": acct.password})
    assert status == 429
    assert isinstance(err, dict)
    assert err["error"]["code"] == "too_many_sign_ins"
    # An unknown name answers exactly like a wrong password.
    status, err = await http("POST", url, json={"name": "nobody", "password": "whatever1"})
    assert status == 401
    assert isinstance(err, dict)
    assert err["error"]["code"] == "bad_credentials"


async def test_admin_endpoints_create_hosts_and_reset_passwords(
    console: Console, make_server: object, settings: Settings
) -> None:
    """With an admin token: create a host (password answered), reset it; without: 401/403."""
    # No admin token configured: a bearer token is refused 403, none at all is a 401 (as on
    # every route that needs credentials).
    status, err = await http("POST", console.url + "/api/admin/hosts", json={"name": "a"},
                             headers={"Authorization": "Bearer anything"})  # fmt: skip
    assert (status, err["error"]["code"]) == (403, "admin_disabled"), err  # type: ignore[index]
    status, err = await http("POST", console.url + "/api/admin/hosts", json={"name": "a"})
    assert (status, err["error"]["code"]) == (401, "bad_admin_token"), err  # type: ignore[index]
    security = dataclasses.replace(settings.security, admin_token="t" * 40)
    admin_settings = dataclasses.replace(settings, security=security)
    server = await make_server(admin_settings)  # type: ignore[operator]
    base = server.url + "/api/admin/hosts"
    auth = {"Authorization": "Bearer " + "t" * 40}
    status, _ = await http("POST", base, json={"name": "carol"}, headers={"Authorization": "x"})
    assert status == 401
    status, made = await http("POST", base, json={"name": "carol"}, headers=auth)
    assert status == 201
    assert isinstance(made, dict)
    assert len(str(made["password"])) >= 12
    status, _ = await http("POST", base, json={"name": "carol"}, headers=auth)
    assert status == 409
    sign_in = server.url + "/api/console/session"
    creds = {"name": "carol", "password": made["password"]}
    assert (await http("POST", sign_in, json=creds))[0] == 201
    status, reset = await http(
        "POST", f"{base}/{made['id']}/password", json={"password": "new-password-1"}, headers=auth
    )
    assert status == 200
    assert isinstance(reset, dict)
    assert reset["name"] == "carol"
    assert (await http("POST", sign_in, json=creds))[0] == 401
    good = {"name": "carol", "password": "new-password-1"}
    assert (await http("POST", sign_in, json=good))[0] == 201
    status, _ = await http("POST", f"{base}/999999/password", json={}, headers=auth)
    assert status == 404


async def test_password_reset_revokes_the_hosts_console_sessions(
    make_server: object, settings: Settings, console: Console
) -> None:
    """A reset (admin API) ends every console session of that host at once — as a cookie and
    as the same token sent as a bearer — while a new sign-in (even in the same second), other
    hosts' sessions and plain host tokens keep working."""
    security = dataclasses.replace(settings.security, admin_token="t" * 40)
    server = await make_server(dataclasses.replace(settings, security=security))  # type: ignore[operator]
    admin = {"Authorization": "Bearer " + "t" * 40}
    alice = await console.account("alice")
    bob = await console.account("bob")
    me = server.url + "/api/console/session"
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as one,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as two,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as bobs,
    ):
        for s, who in ((one, alice), (two, alice), (bobs, bob)):
            async with s.post(me, json={"name": who.name, "password": who.password}) as r:
                assert r.status == 201
        cookie = one.cookie_jar.filter_cookies(URL(server.url))[session_mod.COOKIE].value
        for s in (one, two):
            async with s.get(me) as r:
                assert r.status == 200
        status, _ = await http(
            "POST", f"{server.url}/api/admin/hosts/{alice.id}/password",
            json={"password": "brand-new-pass-1"}, headers=admin,
        )  # fmt: skip
        assert status == 200
        for s in (one, two):
            async with s.get(me) as r:
                body = await r.json()
                assert r.status == 401
                assert body["error"]["code"] == "session_revoked"
            async with s.get(server.url + "/api/host/orders") as r:
                assert r.status == 401
        status, body = await http("GET", me, headers={"Authorization": f"Bearer {cookie}"})
        assert status == 401
        assert isinstance(body, dict)
        assert body["error"]["code"] == "session_revoked"
        # Public routes still answer the revoked cookie; signing in again works at once.
        async with one.get(server.url + "/api/rooms?state=live") as r:
            assert r.status == 200
        async with one.post(me, json={"name": "alice", "password": "brand-new-pass-1"}) as r:
            assert r.status == 201
        async with one.get(me) as r:
            assert r.status == 200
        async with bobs.get(me) as r:
            assert r.status == 200
    status, _ = await http("GET", server.url + "/api/host/orders",
                           headers={"Authorization": f"Bearer {alice.token}"})  # fmt: skip
    assert status == 200


def _filled(path: str) -> str:
    """``path`` with every ``{param}`` replaced by 1."""
    return re.sub(r"\{\w+\}", "1", path)


async def test_sign_out_ends_that_session_on_the_server(
    console: Console, pool: asyncpg.Pool
) -> None:
    """After sign-out a copy of the cookie (with its CSRF token) is refused with 401
    ``session_revoked`` by every host route — as the cookie and as a bearer — while the host's
    other session and plain host tokens keep working; the record lasts until the token's
    expiry."""
    acct = await console.account()
    me = console.url + "/api/console/session"
    creds = {"name": acct.name, "password": acct.password}
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as laptop,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as phone,
    ):
        csrf = await console.sign_in(laptop, acct)
        await console.sign_in(phone, acct)
        token = laptop.cookie_jar.filter_cookies(URL(console.url))[session_mod.COOKIE].value
        copied = {"Cookie": f"{session_mod.COOKIE}={token}", "X-CSRF-Token": csrf}
        status, _ = await http("GET", me, headers=copied)
        assert status == 200
        status, out = await console.call(laptop, "DELETE", "/api/console/session",
                                         headers={"X-CSRF-Token": csrf})  # fmt: skip
        assert (status, out) == (200, {"signed_out": True})
        expires = await pool.fetchval(
            "SELECT expires_at FROM revoked_sessions WHERE kind = 'host' AND subject = $1",
            str(acct.id),
        )
        assert expires is not None  # recorded until the token itself expires (24 h)
        assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24)
        for headers in (copied, {"Authorization": f"Bearer {token}"}):
            status, body = await http("GET", me, headers=headers)
            assert status == 401
            assert isinstance(body, dict)
            assert body["error"]["code"] == "session_revoked"
            assert "signed out" in str(body["error"]["message"])
        status, _ = await http("POST", console.url + "/api/rooms", json={"title": "x"},
                               headers=copied)  # fmt: skip
        assert status == 401
        host_routes = [r for r in console.server.app[contract.ROUTES] if "host" in r.auth]
        assert len(host_routes) > 40
        for r in host_routes:
            status, body = await http(
                r.method, console.url + _filled(r.path), json={}, headers=copied
            )
            assert status == 401, (r.method, r.path, body)
            assert isinstance(body, dict)
            assert body["error"]["code"] == "session_revoked", (r.method, r.path, body)
        # The other device stays signed in; signing in again works; plain tokens too.
        status, _ = await console.call(phone, "GET", "/api/console/session")
        assert status == 200
        async with laptop.post(me, json=creds) as r:
            assert r.status == 201
        status, _ = await console.call(laptop, "GET", "/api/console/session")
        assert status == 200
    status, _ = await http("GET", console.url + "/api/host/orders",
                           headers={"Authorization": f"Bearer {acct.token}"})  # fmt: skip
    assert status == 200


async def test_expired_sign_out_records_are_purged(
    console: Console, pool: asyncpg.Pool, make_server: object
) -> None:
    """Each node deletes the records of sessions whose tokens have expired when it starts
    (then hourly); live records stay."""
    await pool.execute(
        """INSERT INTO revoked_sessions (sid, kind, subject, expires_at) VALUES
           ('old-one', 'host', '1', now() - interval '1 second'),
           ('old-two', 'agent', '2', now() - interval '3 days'),
           ('live-one', 'host', '1', now() + interval '1 hour')"""
    )
    await make_server()  # type: ignore[operator]
    deadline = time.monotonic() + 10
    while await pool.fetchval("SELECT count(*) FROM revoked_sessions") != 1:
        assert time.monotonic() < deadline, "expired records were not purged"
        await asyncio.sleep(0.05)
    assert await pool.fetchval("SELECT sid FROM revoked_sessions") == "live-one"


async def test_non_ascii_admin_token_or_csrf_header_is_refused_not_500(
    console: Console,
    make_server: object,
    settings: Settings,
    browser_session: aiohttp.ClientSession,
) -> None:
    """hmac.compare_digest raises TypeError on a non-ASCII str: `Authorization: Bearer tökén`
    on an admin endpoint and `X-CSRF-Token: tökén` on a console write were 500s."""
    security = dataclasses.replace(settings.security, admin_token="t" * 40)
    server = await make_server(dataclasses.replace(settings, security=security))  # type: ignore[operator]
    status, err = await http(
        "POST", server.url + "/api/admin/hosts", json={"name": "dave"},
        headers={"Authorization": "Bearer tökén"},
    )  # fmt: skip
    assert status == 401, err
    assert isinstance(err, dict)
    assert err["error"]["code"] == "bad_admin_token"
    acct = await console.account()
    await console.sign_in(browser_session, acct)
    status, err = await console.call(
        browser_session, "POST", "/api/rooms", json={"title": "x"},
        headers={"X-CSRF-Token": "tökén"},
    )  # fmt: skip
    assert status == 403, err
    assert err["error"]["code"] == "csrf_failed"


async def test_admin_create_host_trims_the_name_like_the_sign_in_form(
    console: Console, make_server: object, settings: Settings
) -> None:
    """`{"name": " Erin "}` made a host the console could never sign in (its form trims the
    name to "Erin"); a blank name was accepted too."""
    security = dataclasses.replace(settings.security, admin_token="t" * 40)
    server = await make_server(dataclasses.replace(settings, security=security))  # type: ignore[operator]
    base, auth = server.url + "/api/admin/hosts", {"Authorization": "Bearer " + "t" * 40}
    status, made = await http("POST", base, json={"name": " Erin "}, headers=auth)
    assert status == 201, made
    assert isinstance(made, dict)
    assert made["name"] == "Erin"
    creds = {"name": "Erin", "password": made["password"]}
    assert (await http("POST", server.url + "/api/console/session", json=creds))[0] == 201
    status, again = await http("POST", base, json={"name": "Erin  "}, headers=auth)
    assert status == 409, again
    status, err = await http("POST", base, json={"name": "   "}, headers=auth)
    assert status == 400, err
    assert isinstance(err, dict)
    assert err["error"]["field"] == "name"
