"""Flash sales and group offers on the shelf: host lists, a group offer pushed as a bubble and
its "N joined, M to go" following every change, over real HTTP and a real socket."""

from __future__ import annotations

import asyncio
from typing import Any

from livecommerce import keys
from livecommerce import redis_keys as rk
from livecommerce.social import offers
from tests.realtime.viewer import TestViewer, wait_until
from tests.social.conftest import Social, iso


async def _live_room(social: Social, host_id: int) -> int:
    room_id: int = await social.pool.fetchval(
        "INSERT INTO live_rooms (host_id, title, state) VALUES ($1, 'r', 'live') RETURNING id",
        host_id,
    )
    return room_id


async def _offer(social: Social, size: int = 3) -> tuple[int, int, str, int]:
    """(offer id, goods id, host token, host id)."""
    host_id, host_token = await social.shop.host()
    goods_id = await social.shop.goods(host_id, stock=50, price_fen=5000, title="Tea set")
    status, offer = await social.post(
        "/api/host/group-offers", host_token,
        {"goods_id": goods_id, "group_price_fen": 3000, "size": size, "fill_seconds": 3600},
    )  # fmt: skip
    assert status == 201, offer
    return offer["id"], goods_id, host_token, host_id


def _progress(v: TestViewer) -> list[tuple[int, int, int] | None]:
    """(group, joined, paid) of each group_progress frame the viewer got (None: no group)."""
    out: list[tuple[int, int, int] | None] = []
    for f in v.frames:
        if f["type"] == "group_progress":
            g = f["group"]
            out.append(None if g is None else (g["id"], g["joined"], g["paid"]))
    return out


async def test_group_offer_bubble_follows_every_join_and_payment(social: Social) -> None:
    """Pushed: the bubble carries the offer (no group yet). The leader pays (1 joined, 2 to
    go), a member joins (2, 1) and pays, the last seat is taken (no group left to join): one
    frame per change, none for a non-change; a late viewer's REST read is current."""
    offer_id, _, host_token, host_id = await _offer(social)
    room_id = await _live_room(social, host_id)
    _, viewer_token = await social.user()
    v = TestViewer(social.shop.server.ws_url(), room_id, viewer_token)
    await v.connect()
    status, pushed = await social.post(
        f"/api/host/group-offers/{offer_id}/push", host_token, {"room_id": room_id}
    )
    assert status == 201, pushed
    assert (pushed["offer"]["group"], pushed["offer"]["group_price_fen"]) == (None, 3000)
    await wait_until(lambda: any(f["type"] == "group_offer_push" for f in v.frames))
    bubble = next(f for f in v.frames if f["type"] == "group_offer_push")
    assert (bubble["offer"]["id"], bubble["offer"]["goods"]["title"]) == (offer_id, "Tea set")

    _, leader = await social.user()
    status, opened = await social.post(f"/api/group-offers/{offer_id}/groups", leader, None, "o")
    assert status == 201, opened
    gid = opened["group_id"]
    await social.shop.pay(opened["order"])  # the notification applies it: the group opens
    await wait_until(lambda: _progress(v) == [(gid, 1, 1)])
    _, member = await social.user()
    status, joined = await social.post(f"/api/groups/{gid}/join", member, None, "j")
    assert status == 201, joined
    await wait_until(lambda: _progress(v)[-1:] == [(gid, 2, 1)])
    await social.shop.pay(joined["order"])
    await wait_until(lambda: _progress(v)[-1:] == [(gid, 2, 2)])
    status, offer = await social.get(f"/api/group-offers/{offer_id}")
    assert status == 200
    assert offer["group"] == {**offer["group"], "id": gid, "joined": 2, "to_go": 1, "paid": 2}
    # Nothing changed: nothing is published.
    assert await offers.announce(social.pool, social.app[keys.BROKER], [offer_id]) == 0
    _, last = await social.user()
    _, third = await social.post(f"/api/groups/{gid}/join", last, None, "j")
    await wait_until(lambda: _progress(v)[-1:] == [None])  # all seats taken: none to join
    await social.shop.pay(third["order"])
    await social.settle()
    assert (await social.get(f"/api/groups/{gid}"))[1]["status"] == "succeeded"
    await asyncio.sleep(0.3)
    assert _progress(v) == [(gid, 1, 1), (gid, 2, 1), (gid, 2, 2), None]  # success: no change
    # A viewer joining now gets the bubble in welcome and reads the current progress by REST.
    late = TestViewer(social.shop.server.ws_url(), room_id, viewer_token)
    welcome = await late.connect()
    assert welcome["bubble"]["type"] == "group_offer_push"
    assert (await social.get(f"/api/group-offers/{offer_id}"))[1]["group"] is None
    await v.close()
    await late.close()


async def test_failed_group_clears_the_bubbles_group(social: Social) -> None:
    """A featured group that fails is replaced by none (frame from the worker's expiry)."""
    offer_id, _, host_token, host_id = await _offer(social)
    room_id = await _live_room(social, host_id)
    _, leader = await social.user()
    _, opened = await social.post(f"/api/group-offers/{offer_id}/groups", leader, None, "o")
    await social.shop.pay(opened["order"])
    await social.settle()
    _, viewer_token = await social.user()
    v = TestViewer(social.shop.server.ws_url(), room_id, viewer_token)
    await v.connect()
    status, pushed = await social.post(
        f"/api/host/group-offers/{offer_id}/push", host_token, {"room_id": room_id}
    )
    assert status == 201, pushed
    assert pushed["offer"]["group"]["id"] == opened["group_id"]
    await social.pool.execute("UPDATE groups SET expires_at = now() - interval '1 second'")
    social.app[keys.SOCIAL_WORKER].poke()
    await wait_until(lambda: _progress(v) == [None])
    await v.close()


async def test_group_offer_push_refusals(social: Social) -> None:
    """Another host's offer or room: 404; a room not live: 409; a viewer: 403; no frame."""
    offer_id, _, host_token, host_id = await _offer(social)
    room_id = await _live_room(social, host_id)
    other_id, other_token = await social.shop.host()
    other_room = await _live_room(social, other_id)
    url = f"/api/host/group-offers/{offer_id}/push"
    assert (await social.post(url, other_token, {"room_id": other_room}))[0] == 404
    assert (await social.post(url, host_token, {"room_id": other_room}))[0] == 404
    await social.pool.execute("UPDATE live_rooms SET state = 'scheduled' WHERE id = $1", room_id)
    status, body = await social.post(url, host_token, {"room_id": room_id})
    assert (status, body["error"]["code"]) == (409, "room_not_live")
    await social.pool.execute("UPDATE live_rooms SET state = 'ended' WHERE id = $1", room_id)
    status, body = await social.post(url, host_token, {"room_id": room_id})
    assert (status, body["error"]["code"]) == (409, "room_ended")
    _, user_token = await social.user()
    assert (await social.post(url, user_token, {"room_id": room_id}))[0] == 403
    live = await _live_room(social, host_id)
    assert (await social.post("/api/host/group-offers/999999/push", host_token,
                              {"room_id": live}))[0] == 404  # fmt: skip
    assert not await social.app[keys.REDIS].exists(rk.room_history(room_id))


async def test_shelf_lists_only_the_hosts_offers_of_the_room(social: Social) -> None:
    """GET /api/host/flash-sales and /api/host/group-offers: the host's own, filtered by the
    room's goods; another host sees none of them."""
    offer_id, goods_id, host_token, host_id = await _offer(social)
    room_id = await _live_room(social, host_id)
    other_goods = await social.shop.goods(host_id, stock=5)
    status, sale = await social.post(
        "/api/host/flash-sales", host_token,
        {"goods_id": goods_id, "sale_price_fen": 1000, "stock": 5, "starts_at": iso(-60),
         "ends_at": iso(3600)},
    )  # fmt: skip
    assert status == 201, sale
    lists: dict[str, Any] = {}
    for path in ("/api/host/flash-sales", "/api/host/group-offers"):
        for query in ("", f"?room_id={room_id}"):
            status, body = await social.get(path + query, host_token)
            assert status == 200, body
            lists[path + query] = [i["id"] for i in body["items"]]
    assert lists["/api/host/flash-sales"] == [sale["id"]]
    assert lists["/api/host/group-offers"] == [offer_id]
    assert lists[f"/api/host/flash-sales?room_id={room_id}"] == []  # goods not attached yet
    await social.pool.execute(
        "INSERT INTO room_goods (room_id, goods_id, position) VALUES ($1, $2, 0), ($1, $3, 1)",
        room_id, goods_id, other_goods,
    )  # fmt: skip
    _, body = await social.get(f"/api/host/group-offers?room_id={room_id}", host_token)
    assert [i["id"] for i in body["items"]] == [offer_id]
    _, other = await social.shop.host()
    for path in ("/api/host/flash-sales", "/api/host/group-offers"):
        assert (await social.get(path, other))[1]["items"] == []
        assert (await social.get(path))[0] == 401
