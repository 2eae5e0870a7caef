"""Goods create/edit (host token) and the keyset feed, over real HTTP."""

from __future__ import annotations

import pytest

from tests.commerce.conftest import Shop, bearer
from tests.support import http


async def _feed_all(shop: Shop, query: str = "", limit: int = 3) -> list[int]:
    ids: list[int] = []
    cursor = ""
    while True:
        url = f"{shop.url}/api/goods?limit={limit}{query}" + (f"&cursor={cursor}" if cursor else "")
        status, body = await http("GET", url)
        assert status == 200, body
        assert isinstance(body, dict)
        ids += [g["id"] for g in body["items"]]  # type: ignore[attr-defined]
        if body["next_cursor"] is None:
            return ids
        cursor = str(body["next_cursor"])


async def test_host_creates_and_edits_goods(shop: Shop) -> None:
    """A host creates goods (201) linked to its room and edits only the given fields."""
    host_id, token = await shop.host()
    room = await shop.pool.fetchval(
        "INSERT INTO live_rooms (host_id, title) VALUES ($1, 'r') RETURNING id", host_id
    )
    new = {
        "title": "Tea",
        "price_fen": 8800,
        "stock": 5,
        "category": "food",
        "images": ["https://img.example/tea.jpg"],
        "room_ids": [room],
    }
    status, body = await http("POST", shop.url + "/api/goods", json=new, headers=bearer(token))
    assert status == 201, body
    assert isinstance(body, dict)
    assert body["host_id"] == host_id
    assert body["room_ids"] == [room]
    assert body["status"] == "on_sale"
    gid = body["id"]
    status, body = await http(
        "PATCH", f"{shop.url}/api/goods/{gid}", json={"price_fen": 7700}, headers=bearer(token)
    )
    assert status == 200
    assert (body["price_fen"], body["title"], body["stock"]) == (7700, "Tea", 5)  # type: ignore[index]
    status, body = await http("GET", f"{shop.url}/api/goods/{gid}")
    assert (status, body["price_fen"]) == (200, 7700)  # type: ignore[index]


async def test_goods_write_needs_the_owning_host(shop: Shop) -> None:
    """No token 401, user token 403, another host's goods 404, another host's room 400."""
    host_id, token = await shop.host()
    other_id, other = await shop.host()
    gid = await shop.goods(host_id)
    user = await shop.login()
    body = {"title": "x", "price_fen": 1, "stock": 1}
    assert (await http("POST", shop.url + "/api/goods", json=body))[0] == 401
    assert (await http("POST", shop.url + "/api/goods", json=body, headers=bearer(user)))[0] == 403
    patch = {"title": "stolen"}
    url = f"{shop.url}/api/goods/{gid}"
    assert (await http("PATCH", url, json=patch, headers=bearer(other)))[0] == 404
    other_room = await shop.pool.fetchval(
        "INSERT INTO live_rooms (host_id, title) VALUES ($1, 'r') RETURNING id", other_id
    )
    status, err = await http("PATCH", url, json={"room_ids": [other_room]}, headers=bearer(token))
    assert (status, err["error"]["field"]) == (400, "room_ids")  # type: ignore[index]
    status, err = await http("PATCH", url, json={"title": "  "}, headers=bearer(token))
    assert (status, err["error"]["field"]) == (400, "title")  # type: ignore[index]
    assert await shop.pool.fetchval("SELECT title FROM goods WHERE id = $1", gid) == "Test goods"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"price_fen": 1, "stock": 1}, "title"),
        ({"title": "", "price_fen": 1, "stock": 1}, "title"),
        ({"title": " \u3000", "price_fen": 1, "stock": 1}, "title"),
        ({"title": "x" * 201, "price_fen": 1, "stock": 1}, "title"),
        ({"title": "x", "price_fen": 9.99, "stock": 1}, "price_fen"),
        ({"title": "x", "price_fen": "100", "stock": 1}, "price_fen"),
        ({"title": "x", "price_fen": True, "stock": 1}, "price_fen"),
        ({"title": "x", "price_fen": -1, "stock": 1}, "price_fen"),
        ({"title": "x", "price_fen": 10**30, "stock": 1}, "price_fen"),
        ({"title": "x", "price_fen": 1, "stock": -5}, "stock"),
        ({"title": "x", "price_fen": 1}, "stock"),
        ({"title": "x", "price_fen": 1, "stock": 1, "status": "sold"}, "status"),
        ({"title": "x", "price_fen": 1, "stock": 1, "images": ["ftp://a/b"]}, "images"),
        ({"title": "x", "price_fen": 1, "stock": 1, "images": ["https://a"] * 10}, "images"),
        ({"title": "x", "price_fen": 1, "stock": 1, "room_ids": [0]}, "room_ids"),
        ({"title": "x", "price_fen": 1, "stock": 1, "room_ids": [2**64]}, "room_ids"),
        ({"title": "x\u0000", "price_fen": 1, "stock": 1}, "title"),
        ({"title": "x", "price_fen": 1, "stock": 1, "host_id": 9}, "host_id"),
    ],
)
async def test_bad_goods_name_the_field(shop: Shop, body: dict[str, object], field: str) -> None:
    """Each invalid goods field is a 400 naming it; money must be an integer."""
    _, token = await shop.host()
    status, err = await http("POST", shop.url + "/api/goods", json=body, headers=bearer(token))
    assert (status, err["error"]["field"]) == (400, field)  # type: ignore[index]
    assert await shop.pool.fetchval("SELECT count(*) FROM goods") == 0


async def test_feed_pages_cover_everything_once_while_goods_are_inserted(shop: Shop) -> None:
    """Keyset paging: inserts and edits during scrolling neither duplicate nor skip items."""
    host_id, token = await shop.host()
    original = [await shop.goods(host_id, title=f"g{i}") for i in range(10)]
    seen: list[int] = []
    status, page = await http("GET", shop.url + "/api/goods?limit=4")
    assert status == 200
    assert isinstance(page, dict)
    seen += [g["id"] for g in page["items"]]  # type: ignore[attr-defined]
    # While the client scrolls: new goods appear, an old one is edited (bumping updated_at).
    for i in range(3):
        await shop.goods(host_id, title=f"new{i}")
    await http(
        "PATCH", f"{shop.url}/api/goods/{original[0]}", json={"title": "e"}, headers=bearer(token)
    )
    cursor = page["next_cursor"]
    while cursor is not None:
        status, page = await http("GET", f"{shop.url}/api/goods?limit=4&cursor={cursor}")
        assert status == 200
        assert isinstance(page, dict)
        seen += [g["id"] for g in page["items"]]  # type: ignore[attr-defined]
        cursor = page["next_cursor"]
    assert seen == sorted(original, reverse=True)


async def test_feed_filters_and_hides_unsold(shop: Shop) -> None:
    """category and room_id filter the feed; drafts and off-sale goods are not in it."""
    host_id, _ = await shop.host()
    food = [await shop.goods(host_id, category="food") for _ in range(4)]
    toys = [await shop.goods(host_id, category="toys") for _ in range(2)]
    await shop.goods(host_id, category="food", status="draft")
    await shop.goods(host_id, category="food", status="off_sale")
    room = await shop.pool.fetchval(
        "INSERT INTO live_rooms (host_id, title) VALUES ($1, 'r') RETURNING id", host_id
    )
    await shop.pool.executemany(
        "INSERT INTO room_goods (room_id, goods_id) VALUES ($1, $2)",
        [(room, food[1]), (room, toys[0])],
    )
    assert await _feed_all(shop, "&category=food") == sorted(food, reverse=True)
    assert await _feed_all(shop, f"&room_id={room}", limit=1) == [toys[0], food[1]]
    assert await _feed_all(shop, "&category=toys&room_id=" + str(room)) == [toys[0]]
    assert len(await _feed_all(shop, limit=50)) == 6


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=51", "limit"),
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("room_id=99999999999999999999999", "room_id"),
        ("cursor=garbage", "cursor"),
        ("cursor=" + "a" * 300, "cursor"),
        ("category=" + "c" * 51, "category"),
    ],
)
async def test_bad_feed_queries_name_the_field(shop: Shop, query: str, field: str) -> None:
    """Out-of-range or forged query values are a 400 naming the parameter, never a 500."""
    status, err = await http("GET", f"{shop.url}/api/goods?{query}")
    assert (status, err["error"]["field"]) == (400, field)  # type: ignore[index]


async def test_cursor_is_bound_to_its_filters_and_unforgeable(shop: Shop) -> None:
    """A cursor reused with other filters, or edited, is refused with 400."""
    host_id, _ = await shop.host()
    for _ in range(3):
        await shop.goods(host_id, category="food")
    _, page = await http("GET", shop.url + "/api/goods?limit=1&category=food")
    cursor = str(page["next_cursor"])  # type: ignore[index]
    status, _ = await http("GET", f"{shop.url}/api/goods?limit=1&category=toys&cursor={cursor}")
    assert status == 400
    body, sig = cursor.split(".")
    forged = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + sig
    assert (await http("GET", f"{shop.url}/api/goods?cursor={forged}&category=food"))[0] == 400
    ok = await http("GET", f"{shop.url}/api/goods?limit=1&category=food&cursor={cursor}")
    assert ok[0] == 200


async def test_goods_paths_with_bad_ids_are_404(shop: Shop) -> None:
    """Non-numeric, zero and out-of-range ids are 404, drafts are not public."""
    host_id, _ = await shop.host()
    draft = await shop.goods(host_id, status="draft")
    for gid in ("abc", "0", "99999999999999999999", str(draft), "-1"):
        status, body = await http("GET", f"{shop.url}/api/goods/{gid}")
        assert status == 404, gid
        assert body["error"]["code"] == "not_found"  # type: ignore[index]
