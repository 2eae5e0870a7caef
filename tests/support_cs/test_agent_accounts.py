"""Agent accounts over real HTTP: the host creates them, agents sign in on their own (cookie +
CSRF, rate-limited, same-origin), bad input, the wrong kind of token, canned replies per shop."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from yarl import URL

from livecommerce.api import contract
from livecommerce.api.contract import AGENT
from livecommerce.auth.session import AGENT_COOKIE
from tests.commerce.conftest import bearer
from tests.support import http
from tests.support_cs.agentkit import Agent, HostShop
from tests.support_cs.conftest import Desk

Shops = Callable[[], Awaitable[HostShop]]


async def test_host_creates_agents_with_checked_input(desk: Desk, shops: Shops) -> None:
    """Bad logins, short passwords, unknown fields, a taken login, a capacity below the load."""
    s = await shops()
    good = {"name": "Ann", "login": "ann.one", "password": "long-enough", "capacity": 2}
    for bad in (
        {**good, "login": "a b"},
        {**good, "login": "ab"},
        {**good, "password": "short"},
        {**good, "capacity": 0},
        {**good, "capacity": 101},
        {**good, "role": "admin"},
        {**good, "name": "Ann\u0000"},
    ):
        status, body = await s.call("POST", "/api/host/support/agents", bad)
        assert status == 400, (bad, body)
    status, created = await s.call("POST", "/api/host/support/agents", good)
    assert status == 201, created
    assert "password" not in created
    assert "password_hash" not in created
    status, body = await s.call("POST", "/api/host/support/agents", {**good, "name": "Other"})
    assert (status, body["error"]["code"]) == (409, "login_taken")
    status, _ = await http("POST", desk.shop.url + "/api/host/support/agents", json=good)
    assert status == 401  # no token
    user = await desk.shop.login("buyer")
    status, _ = await http("POST", desk.shop.url + "/api/host/support/agents", json=good,
                           headers=bearer(user))  # fmt: skip
    assert status == 403  # a buyer's token


async def test_sign_in_session_csrf_and_sign_out(desk: Desk, shops: Shops) -> None:
    """Wrong password 401; the session cookie then authenticates reads, writes need the CSRF
    token; the host's token is not an agent's and vice versa; sign-out ends the session."""
    s = await shops()
    ann = await s.agent("Ann")
    status, me = await ann.call("GET", "/api/agent/session")
    assert status == 200, me
    assert (me["agent"]["id"], me["agent"]["host_id"]) == (ann.id, s.id)
    assert me["csrf_token"] == ann.csrf
    status, body = await ann.call("POST", "/api/agent/presence", {}, csrf=False)
    assert (status, body["error"]["code"]) == (403, "csrf_failed")
    status, body = await ann.call("POST", "/api/agent/presence", {})
    assert status == 200
    assert body["online"] is True
    # The host token is no agent's; the agent's cookie is no host's.
    status, body = await s.call("GET", "/api/agent/queue")
    assert (status, body["error"]["code"]) == (403, "wrong_role")
    assert body["error"]["message"] == "this action needs an agent token"
    status, _ = await ann.call("GET", "/api/host/support/queue")
    assert status == 401  # the agent cookie is not the console's cookie
    wrong = Agent(desk.shop.url, ann.id, ann.login, "not-the-password")
    try:
        status, body = await wrong.sign_in()
        assert (status, body["error"]["code"]) == (401, "bad_credentials")
        status, body = await wrong.call("POST", "/api/agent/session",
                                        {"login": "nobody-here", "password": "whatever1"})  # fmt: skip
        assert (status, body["error"]["code"]) == (401, "bad_credentials")  # same answer
    finally:
        await wrong.close()
    status, _ = await ann.call("DELETE", "/api/agent/session")
    assert status == 200
    status, _ = await ann.call("GET", "/api/agent/session")
    assert status == 401


async def test_sign_in_is_rate_limited_and_same_origin(desk: Desk, shops: Shops) -> None:
    """Five failures for a login: the sixth try is 429 even with the right password; a
    sign-in posted from another origin is 403; a password change by the host takes effect."""
    s = await shops()
    ann = await s.agent("Ann")
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            desk.shop.url + "/api/agent/session",
            json={"login": ann.login, "password": ann.password},
            headers={"Origin": "https://evil.example"},
        ) as r,
    ):
        assert r.status == 403
    status, _ = await s.call("PATCH", f"/api/host/support/agents/{ann.id}",
                             {"password": "a-new-password"})  # fmt: skip
    assert status == 200
    assert (await ann.sign_in())[0] == 401  # the old password no longer works
    assert (await ann.sign_in("a-new-password"))[0] == 201
    for _ in range(5):
        assert (await ann.sign_in("wrong-password"))[0] == 401
    status, body = await ann.sign_in("a-new-password")
    assert (status, body["error"]["code"]) == (429, "too_many_sign_ins")


async def test_canned_replies_per_shop(desk: Desk, shops: Shops) -> None:
    """The host and the shop's agents keep one list; another shop sees none of it (404)."""
    a, b = await shops(), await shops()
    ann, bob = await a.agent("Ann"), await b.agent("Bob")
    status, hello = await a.call("POST", "/api/host/support/canned",
                                 {"title": "Hello", "body": "您好，请问有什么可以帮您？"})  # fmt: skip
    assert status == 201, hello
    status, ship = await ann.call("POST", "/api/agent/canned",
                                  {"title": "Shipping", "body": "48 小时内发货。"})  # fmt: skip
    assert status == 201, ship
    status, listed = await ann.call("GET", "/api/agent/canned")
    assert [c["title"] for c in listed["items"]] == ["Hello", "Shipping"]
    status, listed = await a.call("GET", "/api/host/support/canned")
    assert [c["title"] for c in listed["items"]] == ["Hello", "Shipping"]
    assert (await bob.call("GET", "/api/agent/canned"))[1]["items"] == []
    status, _ = await bob.call(
        "PUT", f"/api/agent/canned/{ship['id']}", {"title": "x", "body": "y"}
    )
    assert status == 404
    assert (await bob.call("DELETE", f"/api/agent/canned/{hello['id']}"))[0] == 404
    assert (await b.call("DELETE", f"/api/host/support/canned/{hello['id']}"))[0] == 404
    status, changed = await ann.call("PUT", f"/api/agent/canned/{hello['id']}",
                                     {"title": "Hi", "body": "Hi there"})  # fmt: skip
    assert (status, changed["body"]) == (200, "Hi there")
    status, _ = await ann.call("POST", "/api/agent/canned", {"title": " ", "body": "x"})
    assert status == 400
    assert (await a.call("DELETE", f"/api/host/support/canned/{ship['id']}"))[0] == 200
    status, listed = await ann.call("GET", "/api/agent/canned")
    assert [c["title"] for c in listed["items"]] == ["Hi"]


async def test_agent_endpoints_refuse_bad_input(desk: Desk, shops: Shops) -> None:
    """Malformed bodies and ids are 400 (or 404 for a path that is no id), never a 500, and
    change nothing."""
    s = await shops()
    ann = await s.agent("Ann")
    conv = 1
    for path, body in (
        (f"/api/agent/conversations/{conv}/reply", {"text": ""}),
        (f"/api/agent/conversations/{conv}/reply", {"text": "x" * 1001}),
        (f"/api/agent/conversations/{conv}/reply", {"text": "hi", "to": "someone"}),
        (f"/api/agent/conversations/{conv}/reply", {"text": "\u0000"}),
        (f"/api/agent/conversations/{conv}/transfer", {"to_agent_id": "x"}),
        (f"/api/agent/conversations/{conv}/transfer", {"to_agent_id": 0}),
        ("/api/agent/presence", {"online": "yes"}),
        ("/api/agent/canned", {"title": "t" * 61, "body": "b"}),
        ("/api/agent/session", {"login": "", "password": "x"}),
    ):
        status, answer = await ann.call("POST", path, body)
        assert status == 400, (path, body, answer)
    for path in ("/api/agent/conversations/0", "/api/agent/conversations/abc",
                 "/api/agent/conversations/99999999999999999999"):  # fmt: skip
        status, _ = await ann.call("GET", path)
        assert status in (400, 404), path
    async with ann.session.post(desk.shop.url + f"/api/agent/conversations/{conv}/reply",
                                data=b"{not json", headers={"X-CSRF-Token": ann.csrf,
                                "Content-Type": "application/json"}) as r:  # fmt: skip
        assert r.status == 400
    assert await desk.pool.fetchval("SELECT count(*) FROM support_replies") == 0


async def test_sign_out_ends_that_session_on_the_server(desk: Desk, shops: Shops) -> None:
    """After an agent signs out, a copy of the cookie (with its CSRF token) answers 401
    ``session_revoked`` on every agent route and the feed's handshake, and the feed socket
    opened with that session closes (1008); the agent's other session and its socket go on."""
    s = await shops()
    ann = await s.agent("Ann")
    other = Agent(desk.shop.url, ann.id, ann.login, ann.password)
    try:
        assert (await other.sign_in())[0] == 201
        token = ann.session.cookie_jar.filter_cookies(URL(desk.shop.url))[AGENT_COOKIE].value
        copied = {"Cookie": f"{AGENT_COOKIE}={token}", "X-CSRF-Token": ann.csrf}
        mine, theirs = await ann.feed(), await other.feed()
        async with aiohttp.ClientSession() as thief:
            stolen = await thief.ws_connect(desk.shop.url + "/api/agent/feed", headers=copied)
            assert (await stolen.receive_json(timeout=10))["type"] == "hello"
            status, _ = await ann.call("DELETE", "/api/agent/session")
            assert status == 200
            for ws in (stolen, mine.ws):
                msg = await ws.receive(timeout=10)
                while msg.type == aiohttp.WSMsgType.TEXT:  # frames sent before the close
                    msg = await ws.receive(timeout=10)
                assert msg.type == aiohttp.WSMsgType.CLOSE, msg
                assert (msg.data, msg.extra) == (1008, "session_revoked")
            with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
                await thief.ws_connect(desk.shop.url + "/api/agent/feed", headers=copied)
            assert exc.value.status == 401
        for headers in (copied, {"Authorization": f"Bearer {token}"}):
            status, body = await http("GET", desk.shop.url + "/api/agent/session",
                                      headers=headers)  # fmt: skip
            assert status == 401
            assert isinstance(body, dict)
            assert body["error"]["code"] == "session_revoked"
        agent_routes = [r for r in desk.server.app[contract.ROUTES] if r.auth == AGENT]
        assert len(agent_routes) > 15
        for r in agent_routes:
            path = re.sub(r"\{\w+\}", "1", r.path)
            status, body = await http(r.method, desk.shop.url + path, json={}, headers=copied)
            assert status == 401, (r.method, r.path, body)
            assert isinstance(body, dict)
            assert body["error"]["code"] == "session_revoked", (r.method, r.path, body)
        # The other session (another device) is still signed in, its socket still open.
        status, _ = await other.call("GET", "/api/agent/session")
        assert status == 200
        await theirs.ws.send_str('{"type":"ping"}')
        await theirs.next("pong")
        await theirs.close()
    finally:
        await other.close()
