"""GET /api/rooms (host: own rooms, anyone else: live rooms), host orders, and that no viewer or
buyer reaches any console action over plain HTTP."""

from __future__ import annotations

import functools
import operator
import re
from typing import Any

from livecommerce.api.contract import HOST, ROUTES
from tests.console.conftest import Console
from tests.support import http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def rooms(console: Console, query: str, token: str | None = None) -> tuple[int, Any]:
    headers = bearer(token) if token else None
    return await http("GET", console.url + "/api/rooms" + query, headers=headers)


async def test_hosts_list_their_rooms_and_the_public_sees_live_ones(console: Console) -> None:
    """A host pages through its own rooms by state; others see only live rooms of anyone."""
    alice, bob = await console.account(), await console.account()
    ids: dict[str, list[int]] = {"live": [], "scheduled": [], "ended": []}
    for i in range(5):
        state = ("live", "scheduled", "ended", "live", "scheduled")[i]
        rid = await console.pool.fetchval(
            "INSERT INTO live_rooms (host_id, title, state) VALUES ($1, $2, $3) RETURNING id",
            alice.id, f"room {i}", state,
        )  # fmt: skip
        ids[state].append(rid)
    bob_live = await console.pool.fetchval(
        "INSERT INTO live_rooms (host_id, title, state) VALUES ($1, 'b', 'live') RETURNING id",
        bob.id,
    )
    # Host: all own rooms, newest first, two per page.
    seen, cursor = [], ""
    while True:
        status, page = await rooms(console, f"?limit=2{cursor}", alice.token)
        assert status == 200, page
        seen += [r["id"] for r in page["items"]]
        assert all(r["host_id"] == alice.id for r in page["items"])
        if page["next_cursor"] is None:
            break
        cursor = "&cursor=" + page["next_cursor"]
    assert seen == sorted(functools.reduce(operator.iadd, ids.values(), []), reverse=True)
    status, page = await rooms(console, "?state=scheduled", alice.token)
    assert [r["id"] for r in page["items"]] == sorted(ids["scheduled"], reverse=True)
    # Public (no token, viewer token): live rooms only, any host.
    _, viewer = await http("POST", console.url + "/api/tokens/viewer")
    assert isinstance(viewer, dict)
    for token in (None, str(viewer["token"])):
        status, page = await rooms(console, "", token)
        assert status == 200
        assert [r["id"] for r in page["items"]] == sorted([*ids["live"], bob_live], reverse=True)
        status, page = await rooms(console, "?state=ended", token)
        assert status == 200
        assert page["items"] == []
    # A cursor made for other filters is refused.
    _, page = await rooms(console, "?limit=1", alice.token)
    status, _ = await rooms(
        console, f"?limit=1&state=live&cursor={page['next_cursor']}", alice.token
    )
    assert status == 400


async def test_host_orders_list_only_the_hosts_orders(console: Console) -> None:
    """GET /api/host/orders answers the host's orders, newest first, filtered by state."""
    alice, bob = await console.account(), await console.account()
    user = await console.pool.fetchval("INSERT INTO users (openid) VALUES ('o1') RETURNING id")
    for host, status in ((alice, "paid"), (alice, "pending_payment"), (bob, "paid")):
        goods = await console.pool.fetchval(
            "INSERT INTO goods (host_id, title, price_fen, stock) VALUES ($1, 'g', 100, 5)"
            " RETURNING id",
            host.id,
        )
        await console.pool.execute(
            """INSERT INTO orders (idempotency_key, user_id, goods_id, host_id, quantity,
                   unit_price_fen, total_fen, title, status, expires_at)
               VALUES (gen_random_uuid()::text, $1, $2, $3, 1, 100, 100, 'g', $4,
                       now() + interval '15 minutes')""",
            user, goods, host.id, status,
        )  # fmt: skip
    status, page = await http("GET", console.url + "/api/host/orders", headers=bearer(alice.token))
    assert status == 200
    assert isinstance(page, dict)
    assert [o["status"] for o in page["items"]] == ["pending_payment", "paid"]  # type: ignore[index]
    status, page = await http(
        "GET", console.url + "/api/host/orders?state=paid", headers=bearer(alice.token)
    )
    assert isinstance(page, dict)
    assert len(page["items"]) == 1


async def test_no_viewer_or_buyer_reaches_any_console_action(console: Console) -> None:
    """Every host-only route answers 401 without credentials and 403 to viewer and user tokens."""
    host_routes = [r for r in console.server.app[ROUTES] if r.auth == HOST]
    assert len(host_routes) >= 15  # rooms, goods, pushes, schedules, orders, console session
    _, viewer = await http("POST", console.url + "/api/tokens/viewer")
    assert isinstance(viewer, dict)
    user = await console.pool.fetchval("INSERT INTO users (openid) VALUES ('o2') RETURNING id")
    from livecommerce.auth.tokens import issue_token
    from livecommerce.config import DEV_SECRET

    user_token = issue_token(DEV_SECRET, "user", user, 3600)
    for r in host_routes:
        path = re.sub(r"\{[^}]+\}", "1", r.path)
        body = {} if r.method in ("POST", "PUT", "PATCH") else None
        status, _ = await http(r.method, console.url + path, json=body)
        assert status == 401, (r.method, r.path, status)
        for token in (str(viewer["token"]), user_token):
            for headers in (bearer(token), {"Cookie": f"lc_session={token}"}):
                status, err = await http(r.method, console.url + path, json=body, headers=headers)
                assert status == 403, (r.method, r.path, status, err)


async def test_only_the_rooms_host_deletes_a_comment(console: Console) -> None:
    """DELETE /api/rooms/{id}/comments/{seq} is a 404 ``room_not_found`` for another host (as if
    the room did not exist), and ``comment_not_found`` for the room's host when the seq is no
    comment of the room (tests/console/test_comment_delete.py deletes real ones)."""
    alice, bob = await console.account(), await console.account()
    room = await console.pool.fetchval(
        "INSERT INTO live_rooms (host_id, title, state) VALUES ($1, 'r', 'live') RETURNING id",
        alice.id,
    )
    url = f"{console.url}/api/rooms/{room}/comments/7"
    status, body = await http("DELETE", url, headers=bearer(bob.token))
    assert (status, body["error"]["code"]) == (404, "room_not_found"), body  # type: ignore[index]
    status, body = await http("DELETE", url, headers=bearer(alice.token))
    assert (status, body["error"]["code"]) == (404, "comment_not_found"), body  # type: ignore[index]
