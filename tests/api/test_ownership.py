"""Every reference a host passes must be the host's own, and drafts are never public (issue 13.11).

One row per host-writable reference: a host (the "intruder") names another host's resource and
gets exactly the answer a missing id gets — same status, code and field — so neither the action
happens nor the resource's existence leaks. Drafts: attachable by their own host, never in the
public room, never pushable, never behind a public flash sale.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.commerce.conftest import Shop, bearer
from tests.support import http

MISSING = 9_000_000_000  # a valid id that names nothing


def _iso(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


@dataclass
class Hosts:
    """Host A (the owner) and host B (the intruder), each with live rooms, goods and more."""

    shop: Shop
    a: dict[str, Any]
    b: dict[str, Any]

    async def call(self, method: str, path: str, body: Any, token: str) -> tuple[int, Any]:
        return await http(method, self.shop.url + path, json=body, headers=bearer(token))


async def _host_world(shop: Shop) -> dict[str, Any]:
    host_id, token = await shop.host()
    goods = await shop.goods(host_id, stock=50)
    draft = await shop.goods(host_id, stock=50, status="draft", title="Secret draft")
    room = await shop.pool.fetchval(
        "INSERT INTO live_rooms (host_id, title, state, started_at) VALUES ($1, 'r', 'live', now())"
        " RETURNING id",
        host_id,
    )
    await shop.pool.execute(
        "INSERT INTO room_goods (room_id, goods_id, position) VALUES ($1, $2, 0)", room, goods
    )
    return {"host_id": host_id, "token": token, "goods": goods, "draft": draft, "room": room}


@pytest.fixture
async def hosts(shop: Shop) -> Hosts:
    a, b = await _host_world(shop), await _host_world(shop)
    world = Hosts(shop, a, b)
    # A's schedule, flash sale and a paid order (to ship); B's flash sale.
    for h in (a, b):
        status, sale = await world.call(
            "POST", "/api/host/flash-sales",
            {"goods_id": h["goods"], "sale_price_fen": 100, "stock": 5,
             "starts_at": _iso(-60), "ends_at": _iso(3600)},
            h["token"],
        )  # fmt: skip
        assert status == 201, sale
        h["sale"] = sale["id"]
        status, offer = await world.call(
            "POST", "/api/host/group-offers",
            {"goods_id": h["goods"], "group_price_fen": 100, "size": 2, "fill_seconds": 600},
            h["token"],
        )  # fmt: skip
        assert status == 201, offer
        h["offer"] = offer["id"]
    status, schedule = await world.call(
        "POST", f"/api/rooms/{a['room']}/schedules",
        {"goods_id": a["goods"], "idempotency_key": "a-1", "at": _iso(3600)}, a["token"],
    )  # fmt: skip
    assert status == 201, schedule
    a["schedule"] = schedule["id"]
    _, order = await shop.order(await shop.login(), a["goods"])
    await shop.pay(order)
    a["order"] = order["id"]
    return world


# (method, path, body) with {X} standing for the other host's resource named by the key in
# the 4th column (or a missing id); {room} is the intruder's own room, {goods} its own goods.
REFERENCES = [
    ("POST", "/api/rooms/{room}/goods", {"goods_ids": ["{X}"]}, "goods"),
    ("POST", "/api/rooms/{room}/goods", {"goods_ids": ["{X}"]}, "draft"),
    ("POST", "/api/rooms/{room}/push", {"goods_id": "{X}"}, "goods"),
    ("POST", "/api/rooms/{room}/push", {"goods_id": "{X}"}, "draft"),
    ("POST", "/api/rooms/{room}/schedules",
     {"goods_id": "{X}", "idempotency_key": "k", "at": "{LATER}"}, "goods"),
    ("POST", "/api/rooms/{X}/goods", {"goods_ids": ["{goods}"]}, "room"),
    ("POST", "/api/rooms/{X}/push", {"goods_id": "{goods}"}, "room"),
    ("POST", "/api/rooms/{X}/withdraw", None, "room"),
    ("POST", "/api/rooms/{X}/start", None, "room"),
    ("POST", "/api/rooms/{X}/end", None, "room"),
    ("POST", "/api/rooms/{X}/schedules",
     {"goods_id": "{goods}", "idempotency_key": "k", "at": "{LATER}"}, "room"),
    ("GET", "/api/rooms/{X}/schedules", None, "room"),
    ("PUT", "/api/rooms/{X}/started_at", {"started_at": "{NOW}"}, "room"),
    ("PATCH", "/api/rooms/{room}/schedules/{X}", {"at": "{LATER}"}, "schedule"),
    ("DELETE", "/api/rooms/{room}/schedules/{X}", None, "schedule"),
    ("POST", "/api/goods", {"title": "t", "price_fen": 1, "stock": 1, "room_ids": ["{X}"]},
     "room"),
    ("PATCH", "/api/goods/{goods}", {"room_ids": ["{X}"]}, "room"),
    ("PATCH", "/api/goods/{X}", {"title": "taken over"}, "goods"),
    ("PATCH", "/api/goods/{X}", {"status": "on_sale"}, "draft"),
    ("POST", "/api/host/flash-sales",
     {"goods_id": "{X}", "sale_price_fen": 1, "stock": 1, "starts_at": "{NOW}",
      "ends_at": "{LATER}"}, "goods"),
    ("POST", "/api/host/flash-sales/{X}/push", {"room_id": "{room}"}, "sale"),
    ("POST", "/api/host/flash-sales/{sale}/push", {"room_id": "{X}"}, "room"),
    ("POST", "/api/host/group-offers",
     {"goods_id": "{X}", "group_price_fen": 1, "size": 2, "fill_seconds": 60}, "goods"),
    ("POST", "/api/host/orders/{X}/ship", {"carrier": "SF", "tracking_no": "1"}, "order"),
    ("POST", "/api/host/group-offers/{X}/push", {"room_id": "{room}"}, "offer"),
    ("POST", "/api/host/group-offers/{offer}/push", {"room_id": "{X}"}, "room"),
]  # fmt: skip


def _fill(template: Any, values: dict[str, Any]) -> Any:
    """``template`` with "{NAME}" strings replaced (whole values keep their type)."""
    if isinstance(template, str):
        if template.startswith("{") and template.endswith("}") and template[1:-1] in values:
            return values[template[1:-1]]
        return template.format(**values)
    if isinstance(template, list):
        return [_fill(v, values) for v in template]
    if isinstance(template, dict):
        return {k: _fill(v, values) for k, v in template.items()}
    return template


def _answer(status: int, body: Any) -> tuple[int, Any, Any]:
    error = body.get("error", {}) if isinstance(body, dict) else {}
    return status, error.get("code"), error.get("field")


@pytest.mark.parametrize(
    ("method", "path", "body", "kind"),
    REFERENCES,
    ids=[f"{r[0]} {r[1]} {r[3]}" for r in REFERENCES],
)
async def test_another_hosts_reference_answers_like_a_missing_one(
    hosts: Hosts, method: str, path: str, body: Any, kind: str
) -> None:
    """Naming host A's resource as host B is refused exactly like a missing id, and changes nothing."""
    a, b = hosts.a, hosts.b
    before = await _snapshot(hosts)
    common = {"room": b["room"], "goods": b["goods"], "sale": b["sale"], "offer": b["offer"],
              "LATER": _iso(3600), "NOW": _iso(-1)}  # fmt: skip
    theirs = _answer(
        *await hosts.call(method, _fill(path, {**common, "X": a[kind]}),
                          _fill(body, {**common, "X": a[kind]}), b["token"])
    )  # fmt: skip
    missing = _answer(
        *await hosts.call(method, _fill(path, {**common, "X": MISSING}),
                          _fill(body, {**common, "X": MISSING}), b["token"])
    )  # fmt: skip
    assert theirs[0] in (400, 404), theirs
    assert theirs == missing
    assert await _snapshot(hosts) == before


async def _snapshot(hosts: Hosts) -> list[Any]:
    """Host A's rows that an intruder's request could change."""
    pool, a = hosts.shop.pool, hosts.a
    return [
        [tuple(r) for r in await pool.fetch(
            "SELECT room_id, goods_id FROM room_goods WHERE goods_id = ANY($1::bigint[])"
            " OR room_id = $2 ORDER BY 1, 2", [a["goods"], a["draft"]], a["room"])],
        tuple(await pool.fetchrow("SELECT state, started_at FROM live_rooms WHERE id = $1",
                                  a["room"])),
        tuple(await pool.fetchrow("SELECT status, due_at, version FROM live_schedules"
                                  " WHERE id = $1", a["schedule"])),
        [tuple(r) for r in await pool.fetch(
            "SELECT id, title, status FROM goods WHERE host_id = $1 ORDER BY id", a["host_id"])],
        await pool.fetchval("SELECT status FROM orders WHERE id = $1", a["order"]),
        await pool.fetchval("SELECT count(*) FROM flash_sales WHERE goods_id = $1", a["goods"]),
        await pool.fetchval("SELECT count(*) FROM group_offers"),
        await pool.fetchval("SELECT count(*) FROM live_schedules"),
    ]  # fmt: skip


async def test_a_link_to_another_hosts_goods_is_never_public_nor_pushable(hosts: Hosts) -> None:
    """A room_goods row naming another host's goods (made before the check) is hidden, and neither
    pushable nor schedulable."""
    a, b = hosts.a, hosts.b
    await hosts.shop.pool.execute(
        "INSERT INTO room_goods (room_id, goods_id, position) VALUES ($1, $2, 5), ($1, $3, 6)",
        b["room"], a["goods"], a["draft"],
    )  # fmt: skip
    status, room = await http("GET", f"{hosts.shop.url}/api/rooms/{b['room']}")
    assert status == 200
    assert [g["id"] for g in room["goods"]] == [b["goods"]]  # type: ignore[index]
    for goods in (a["goods"], a["draft"]):
        status, body = await hosts.call(
            "POST", f"/api/rooms/{b['room']}/push", {"goods_id": goods}, b["token"]
        )
        assert (status, body["error"]["code"]) == (404, "goods_not_in_room")
        status, body = await hosts.call(
            "POST", f"/api/rooms/{b['room']}/schedules",
            {"goods_id": goods, "idempotency_key": f"x{goods}", "at": _iso(3600)}, b["token"],
        )  # fmt: skip
        assert (status, body["error"]["code"]) == (404, "goods_not_in_room")


async def test_own_draft_attaches_but_stays_private_until_on_sale(hosts: Hosts) -> None:
    """A host's own draft attaches (host view), is absent from the public room and not pushable."""
    a, url = hosts.a, hosts.shop.url
    status, attached = await hosts.call(
        "POST", f"/api/rooms/{a['room']}/goods", {"goods_ids": [a["draft"]]}, a["token"]
    )
    assert status == 200, attached
    assert {g["id"]: g["status"] for g in attached["goods"]} == {
        a["goods"]: "on_sale", a["draft"]: "draft",
    }  # fmt: skip
    status, room = await http("GET", f"{url}/api/rooms/{a['room']}")
    assert [g["id"] for g in room["goods"]] == [a["goods"]]  # type: ignore[index]
    assert "Secret draft" not in str(room)
    status, body = await hosts.call(
        "POST", f"/api/rooms/{a['room']}/push", {"goods_id": a["draft"]}, a["token"]
    )
    assert (status, body["error"]["code"]) == (409, "not_on_sale")
    # On sale: public and pushable.
    status, _ = await hosts.call("PATCH", f"/api/goods/{a['draft']}", {"status": "on_sale"},
                                 a["token"])  # fmt: skip
    assert status == 200
    status, room = await http("GET", f"{url}/api/rooms/{a['room']}")
    assert [g["id"] for g in room["goods"]] == [a["goods"], a["draft"]]  # type: ignore[index]
    status, body = await hosts.call(
        "POST", f"/api/rooms/{a['room']}/push", {"goods_id": a["draft"]}, a["token"]
    )
    assert status == 201, body


async def test_off_sale_goods_are_not_pushable(hosts: Hosts) -> None:
    """Goods taken off sale stay listed in the room but a push is 409 not_on_sale."""
    a = hosts.a
    status, _ = await hosts.call("PATCH", f"/api/goods/{a['goods']}", {"status": "off_sale"},
                                 a["token"])  # fmt: skip
    assert status == 200
    status, body = await hosts.call(
        "POST", f"/api/rooms/{a['room']}/push", {"goods_id": a["goods"]}, a["token"]
    )
    assert (status, body["error"]["code"]) == (409, "not_on_sale")


async def test_a_flash_sale_of_goods_back_to_draft_is_neither_public_nor_pushable(
    hosts: Hosts,
) -> None:
    """When a sale's goods go back to draft, the sale reads 404 and its push is 409."""
    a = hosts.a
    status, _ = await http("GET", f"{hosts.shop.url}/api/flash-sales/{a['sale']}")
    assert status == 200
    status, _ = await hosts.call("PATCH", f"/api/goods/{a['goods']}", {"status": "draft"},
                                 a["token"])  # fmt: skip
    assert status == 200
    status, body = await http("GET", f"{hosts.shop.url}/api/flash-sales/{a['sale']}")
    assert (status, body["error"]["code"]) == (404, "not_found")  # type: ignore[index]
    status, body = await hosts.call(
        "POST", f"/api/host/flash-sales/{a['sale']}/push", {"room_id": a["room"]}, a["token"]
    )
    assert (status, body["error"]["code"]) == (409, "not_on_sale")


async def test_drafts_are_not_public_anywhere_a_user_names_goods(hosts: Hosts) -> None:
    """A user naming a draft (goods page, order, points share) gets what a missing id gets."""
    url, draft = hosts.shop.url, hosts.a["draft"]
    user = bearer(await hosts.shop.login())
    for goods in (draft, MISSING):
        status, _ = await http("GET", f"{url}/api/goods/{goods}")
        assert status == 404
    answers = []
    for goods in (draft, MISSING):
        status, body = await http(
            "POST", f"{url}/api/orders", json={"goods_id": goods, "quantity": 1},
            headers={**user, "Idempotency-Key": secrets.token_hex(8)},
        )  # fmt: skip
        share = await http("POST", f"{url}/api/points/actions",
                           json={"action": "share", "goods_id": goods}, headers=user)  # fmt: skip
        answers.append((_answer(status, body), _answer(*share)))
    assert answers[0] == answers[1]
    (order_status, _, _), (share_status, _, share_field) = answers[0]
    assert (order_status, share_status, share_field) == (404, 400, "goods_id")


async def test_a_scheduled_draft_is_skipped_not_published(hosts: Hosts) -> None:
    """A host may schedule its own attached draft; at its due time it is recorded skipped."""
    a, pool = hosts.a, hosts.shop.pool
    status, _ = await hosts.call(
        "POST", f"/api/rooms/{a['room']}/goods", {"goods_ids": [a["draft"]]}, a["token"]
    )
    assert status == 200
    status, sched = await hosts.call(
        "POST", f"/api/rooms/{a['room']}/schedules",
        {"goods_id": a["draft"], "idempotency_key": "draft", "at": _iso(0.5)}, a["token"],
    )  # fmt: skip
    assert status == 201, sched
    for _ in range(200):
        row = await pool.fetchrow(
            "SELECT status, skip_reason, publish_seq FROM live_schedules WHERE id = $1", sched["id"]
        )
        if row["status"] != "pending":
            break
        await asyncio.sleep(0.05)
    assert tuple(row) == ("skipped", "goods_gone", None)
