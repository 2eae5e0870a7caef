"""A host sets an agent a new password over real HTTP: every session the agent signed in with
before ends at once on every node (401 ``session_revoked`` on the agent routes, as the cookie
and as a bearer; the feed refuses it; open feed sockets close 1008 ``session_revoked`` on both
nodes), the agent signs in with the new password and works, colleagues are untouched; a name
or capacity change ends nothing; agent tokens without a password version count as ended."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from yarl import URL

from livecommerce import keys
from livecommerce.api import contract
from livecommerce.api.contract import AGENT
from livecommerce.auth.session import AGENT_COOKIE
from livecommerce.auth.tokens import issue_token
from livecommerce.errors import Unauthorized
from livecommerce.support import agents
from tests.support import http
from tests.support_cs.agentkit import Agent, Feed, HostShop, queued, state
from tests.support_cs.conftest import Desk

Shops = Callable[[], Awaitable[HostShop]]


async def _closed(feed: Feed) -> tuple[int, str]:
    """The close code and reason of ``feed`` (frames sent before it skipped)."""
    msg = await feed.ws.receive(timeout=10)
    while msg.type == aiohttp.WSMsgType.TEXT:
        msg = await feed.ws.receive(timeout=10)
    assert msg.type == aiohttp.WSMsgType.CLOSE, msg
    return msg.data, msg.extra


def _cookie(agent: Agent) -> str:
    return agent.session.cookie_jar.filter_cookies(URL(agent.url))[AGENT_COOKIE].value


async def _session(url: str, headers: dict[str, str]) -> tuple[int, Any]:
    return await http("GET", url + "/api/agent/session", headers=headers)


async def test_new_password_ends_the_agents_sessions_on_every_node(
    desk: Desk, shops: Shops, make_server: Any
) -> None:
    s = await shops()
    node1, node2 = desk.shop.url, (await make_server()).url
    ann, bob = await s.agent("Ann"), await s.agent("Bob")
    # Ann signed in twice: on node 1 (the page's cookie) and on node 2 (another device).
    ann2 = Agent(node2, ann.id, ann.login, ann.password)
    try:
        assert (await ann2.sign_in())[0] == 201
        feed1, feed2, bobs = await ann.feed(), await ann2.feed(), await bob.feed()
        conv = await queued(desk, "cleo", f"goods:{s.goods_id}")
        assert await state(desk, conv) == ("agent", ann.id)  # the least busy of the two
        old = {"Cookie": f"{AGENT_COOKIE}={_cookie(ann)}", "X-CSRF-Token": ann.csrf}
        old2 = {"Authorization": f"Bearer {_cookie(ann2)}"}
        for url in (node1, node2):  # both nodes take both sessions before
            for headers in (old, old2):
                assert (await _session(url, headers))[0] == 200

        status, body = await s.call(
            "PATCH", f"/api/host/support/agents/{ann.id}", {"password": "ann-new-password"}
        )
        assert status == 200, body
        assert isinstance(body, dict)
        assert "password_version" not in body
        assert "password_hash" not in body
        assert await desk.pool.fetchval(
            "SELECT password_version FROM support_agents WHERE id = $1", ann.id
        ) == 1  # fmt: skip

        # Both open sockets close (node 1 published; node 2 heard it), the page signs out.
        assert await _closed(feed1) == (1008, "session_revoked")
        assert await _closed(feed2) == (1008, "session_revoked")
        # Each node refuses each old session, as the cookie and as a bearer.
        for url in (node1, node2):
            for headers in (old, old2, {"Authorization": f"Bearer {_cookie(ann)}"}):
                status, body = await _session(url, headers)
                assert status == 401, (url, body)
                assert isinstance(body, dict)
                assert body["error"]["code"] == "session_revoked"
                assert "password was changed" in str(body["error"]["message"])
            for agent_route in [r for r in desk.server.app[contract.ROUTES] if r.auth == AGENT]:
                path = re.sub(r"\{\w+\}", str(conv), agent_route.path)
                status, body = await http(agent_route.method, url + path, json={}, headers=old)
                assert status == 401, (agent_route.method, agent_route.path, body)
                assert isinstance(body, dict)
                assert body["error"]["code"] == "session_revoked"
            with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
                async with aiohttp.ClientSession() as thief:
                    await thief.ws_connect(url + "/api/agent/feed", headers=old)
            assert exc.value.status == 401
        # Nothing of the refused calls happened: the conversation is still Ann's.
        assert await state(desk, conv) == ("agent", ann.id)
        # Public routes still answer the old cookie.
        status, _ = await http("GET", node1 + "/api/rooms?state=live", headers=old)
        assert status == 200

        # The old password no longer signs in; the new one does, at once, on either node.
        status, body = await ann.sign_in()
        assert (status, body["error"]["code"]) == (401, "bad_credentials")
        assert (await ann.sign_in("ann-new-password"))[0] == 201
        assert (await ann2.sign_in("ann-new-password"))[0] == 201
        for agent in (ann, ann2):
            status, me = await agent.call("GET", "/api/agent/session")
            assert status == 200, me
            status, body = await agent.conv(conv, "reply", {"text": "Back with you."})
            assert status == 201, body
        again = await ann2.feed()  # on node 2
        assert [c["id"] for c in again.hello["mine"]] == [conv]
        await again.ws.send_str('{"type":"ping"}')
        await again.next("pong")
        # Bob, a colleague, was never signed out.
        assert (await bob.call("GET", "/api/agent/session"))[0] == 200
        await bobs.ws.send_str('{"type":"ping"}')
        await bobs.next("pong")

        # A second new password ends the sessions of the first (the version moves on again).
        status, _ = await s.call(
            "PATCH", f"/api/host/support/agents/{ann.id}", {"password": "ann-third-password"}
        )
        assert status == 200
        assert await _closed(again) == (1008, "session_revoked")
        assert (await ann.call("GET", "/api/agent/session"))[0] == 401
        await bobs.close()
    finally:
        await ann2.close()


async def test_name_or_capacity_change_ends_no_session(desk: Desk, shops: Shops) -> None:
    s = await shops()
    ann = await s.agent("Ann", capacity=2)
    feed = await ann.feed()
    status, body = await s.call(
        "PATCH", f"/api/host/support/agents/{ann.id}", {"name": "Ann B", "capacity": 4}
    )
    assert status == 200, body
    assert isinstance(body, dict)
    assert (body["name"], body["capacity"]) == ("Ann B", 4)
    status, me = await ann.call("GET", "/api/agent/session")
    assert status == 200, me
    assert me["agent"]["name"] == "Ann B"
    await feed.ws.send_str('{"type":"ping"}')
    await feed.next("pong")  # the socket is still open
    assert await desk.pool.fetchval(
        "SELECT password_version FROM support_agents WHERE id = $1", ann.id
    ) == 0  # fmt: skip
    # Another shop's host cannot change (or end the sessions of) Ann: 404, nothing changes.
    other = await shops()
    status, body = await other.call(
        "PATCH", f"/api/host/support/agents/{ann.id}", {"password": "not-your-agent"}
    )
    assert (status, body["error"]["code"]) == (404, "agent_not_found")
    assert (await ann.call("GET", "/api/agent/session"))[0] == 200
    await feed.ws.send_str('{"type":"ping"}')
    await feed.next("pong")
    await feed.close()


async def test_agent_tokens_without_a_password_version_are_ended(desk: Desk, shops: Shops) -> None:
    """Agent tokens signed before sessions carried a version (with or without a session id)
    answer 401 ``session_revoked``; one of the current version works, then ends with a new
    password — and a feed seat opening for an older version is refused under the row lock."""
    s = await shops()
    ann = await s.agent("Ann")
    secret = desk.server.app[keys.SETTINGS].secret
    url = desk.shop.url
    for token in (
        issue_token(secret, "agent", ann.id, 3600),
        issue_token(secret, "agent", ann.id, 3600, session_id="pre-0027-session"),
    ):
        status, body = await _session(url, {"Authorization": f"Bearer {token}"})
        assert status == 401, body
        assert isinstance(body, dict)
        assert body["error"]["code"] == "session_revoked"
        assert "sign in again" in str(body["error"]["message"])
    current = issue_token(secret, "agent", ann.id, 3600, session=0)
    assert (await _session(url, {"Authorization": f"Bearer {current}"}))[0] == 200
    # Another agent's token in the console cookie (no real browser's) does not displace the
    # agent cookie's session: that one's version is the one read.
    bob = await s.agent("Bob")
    mixed = {"Cookie": f"lc_session={_cookie(bob)}; {AGENT_COOKIE}={_cookie(ann)}"}
    assert (await _session(url, mixed))[0] == 200
    status, _ = await s.call("PATCH", f"/api/host/support/agents/{ann.id}",
                             {"password": "ann-new-password"})  # fmt: skip
    assert status == 200
    assert (await _session(url, {"Authorization": f"Bearer {current}"}))[0] == 401
    assert (await _session(url, mixed))[0] == 401
    # The feed's attach checks the version under the agent's lock (a change committed between
    # the request's check and the socket's registration).
    pool, lease = desk.pool, desk.server.app[keys.SETTINGS].support.agent_lease_seconds
    with pytest.raises(Unauthorized) as exc:
        await agents.presence(pool, ann.id, True, lease, version=0)
    assert exc.value.code == "session_revoked"
    row, _ = await agents.presence(pool, ann.id, True, lease, version=1)
    assert row["online"] is True


async def test_an_older_passwords_late_revoked_event_leaves_newer_sessions_open(
    desk: Desk, shops: Shops
) -> None:
    """Two new passwords in a row: each PATCH publishes its version after its commit, so the
    first one's event may come last (two requests, two nodes). It ends only sessions older than
    its version: a session of the newest password stays open."""
    s = await shops()
    ann = await s.agent("Ann")
    for password in ("ann-second-password", "ann-third-password"):
        status, body = await s.call(
            "PATCH", f"/api/host/support/agents/{ann.id}", {"password": password}
        )
        assert status == 200, body
    assert (await ann.sign_in("ann-third-password"))[0] == 201
    feed = await ann.feed()
    # The first change's event (version 1), late, after the agent signed in at version 2.
    await desk.server.app[keys.SUPPORT].feed.publish(s.id, "revoked", agent_id=ann.id, version=1)
    await feed.ws.send_str('{"type":"ping"}')
    await feed.next("pong")  # still open
    assert (await ann.call("GET", "/api/agent/session"))[0] == 200
    # The newest version's own event ends nothing of it either; a later one ends it.
    await desk.server.app[keys.SUPPORT].feed.publish(s.id, "revoked", agent_id=ann.id, version=2)
    await feed.ws.send_str('{"type":"ping"}')
    await feed.next("pong")
    status, _ = await s.call(
        "PATCH", f"/api/host/support/agents/{ann.id}", {"password": "ann-fourth-password"}
    )
    assert status == 200
    assert await _closed(feed) == (1008, "session_revoked")
