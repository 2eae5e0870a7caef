"""The social endpoints' typed contract: documented, and answering what the document says."""

from __future__ import annotations

from typing import Any

import jsonschema_rs

from tests.social.conftest import Social, iso
from tests.support import http

OPERATIONS = {
    ("post", "/api/host/flash-sales"): ("201", "hostToken"),
    ("get", "/api/flash-sales/{id}"): ("200", None),
    ("post", "/api/flash-sales/{id}/buy"): ("201", "userToken"),
    ("post", "/api/host/flash-sales/{id}/push"): ("201", "hostToken"),
    ("post", "/api/points/actions"): ("200", "userToken"),
    ("get", "/api/points"): ("200", "userToken"),
    ("get", "/api/points/expiring"): ("200", "userToken"),
    ("get", "/api/points/history"): ("200", "userToken"),
    ("post", "/api/points/checkout"): ("201", "userToken"),
    ("post", "/api/host/group-offers"): ("201", "hostToken"),
    ("post", "/api/group-offers/{id}/groups"): ("201", "userToken"),
    ("post", "/api/groups/{id}/join"): ("201", "userToken"),
    ("get", "/api/groups/{id}"): ("200", None),
    ("get", "/api/goods/{id}/groups"): ("200", None),
}


async def _document(social: Social) -> dict[str, Any]:
    status, doc = await http("GET", social.url + "/api/openapi.json")
    assert status == 200
    assert isinstance(doc, dict)
    return doc


def _check(doc: dict[str, Any], method: str, path: str, status: int, body: Any) -> None:
    """``body`` (answered with ``status``) matches the documented schema of that response."""
    content = doc["paths"][path][method]["responses"][str(status)]["content"]
    schema = {**content["application/json"]["schema"], "components": doc["components"]}
    errors = [e.message for e in jsonschema_rs.Draft202012Validator(schema).iter_errors(body)]
    assert not errors, (method, path, errors)


async def test_every_social_operation_is_documented(social: Social) -> None:
    """Each social route is in /api/openapi.json with its success status and its token kind."""
    doc = await _document(social)
    for (method, path), (status, token) in OPERATIONS.items():
        op = doc["paths"][path][method]
        assert status in op["responses"], (method, path)
        assert op.get("security", [{}]) == ([{token: []}] if token else [{}]), (method, path)
        if "{id}" in path:
            assert "404" in op["responses"], (method, path)


async def test_answers_match_their_documented_schemas(social: Social) -> None:
    """Each answer of a sale, points and group flow fits the schema documented for its status."""
    doc = await _document(social)
    host_id, host = await social.shop.host()
    gid = await social.shop.goods(host_id, stock=50, price_fen=1000)
    _, user = await social.user()
    checked: set[tuple[str, str]] = set()

    def note(method: str, path: str, status: int, body: Any) -> None:
        _check(doc, method, path, status, body)
        checked.add((method, path))

    status, sale = await social.post("/api/host/flash-sales", host, {
        "goods_id": gid, "sale_price_fen": 500, "stock": 5, "starts_at": iso(-5),
        "ends_at": iso(600)})  # fmt: skip
    note("post", "/api/host/flash-sales", status, sale)
    status, body = await social.get(f"/api/flash-sales/{sale['id']}")
    note("get", "/api/flash-sales/{id}", status, body)
    room_id = await social.pool.fetchval(
        "INSERT INTO live_rooms (host_id, title, state) VALUES ($1, 'r', 'live') RETURNING id",
        host_id,
    )
    status, body = await social.post(
        f"/api/host/flash-sales/{sale['id']}/push", host, {"room_id": room_id, "show_seconds": 5}
    )
    note("post", "/api/host/flash-sales/{id}/push", status, body)
    status, body = await social.post(f"/api/flash-sales/{sale['id']}/buy", user, None, "b1")
    note("post", "/api/flash-sales/{id}/buy", status, body)
    status, body = await social.post("/api/points/actions", user, {"action": "checkin"})
    note("post", "/api/points/actions", status, body)
    status, body = await social.post("/api/points/actions", user, {"action": "share",
                                                                  "goods_id": gid})  # fmt: skip
    note("post", "/api/points/actions", status, body)
    status, body = await social.post("/api/points/actions", user, {"action": "share",
                                                                  "goods_id": gid})  # fmt: skip
    assert body["reason"] == "already_shared"
    note("post", "/api/points/actions", status, body)
    for path in ("/api/points", "/api/points/expiring?days=3660", "/api/points/history?limit=1"):
        status, body = await social.get(path, user)
        note("get", path.split("?")[0], status, body)
    status, body = await social.post("/api/points/checkout", user,
                                     {"goods_id": gid, "quantity": 1, "points": 0}, "c1")  # fmt: skip
    note("post", "/api/points/checkout", status, body)
    status, offer = await social.post("/api/host/group-offers", host, {
        "goods_id": gid, "group_price_fen": 800, "size": 2, "fill_seconds": 600})  # fmt: skip
    note("post", "/api/host/group-offers", status, offer)
    status, opened = await social.post(f"/api/group-offers/{offer['id']}/groups", user, {}, "o1")
    note("post", "/api/group-offers/{id}/groups", status, opened)
    await social.shop.pay(opened["order"])
    await social.settle()
    _, other = await social.user()
    status, body = await social.post(f"/api/groups/{opened['group_id']}/join", other, None, "j1")
    note("post", "/api/groups/{id}/join", status, body)
    status, body = await social.get(f"/api/groups/{opened['group_id']}")
    note("get", "/api/groups/{id}", status, body)
    status, body = await social.get(f"/api/goods/{gid}/groups?limit=5")
    note("get", "/api/goods/{id}/groups", status, body)
    assert checked == set(OPERATIONS)


async def test_timestamps_outside_2000_to_2100_name_their_field(social: Social) -> None:
    """A sale starting in 1999 or ending in 2101 is a 400 naming that timestamp."""
    host_id, host = await social.shop.host()
    gid = await social.shop.goods(host_id, stock=5)
    base = {"goods_id": gid, "sale_price_fen": 1, "stock": 1}
    for times, field in (
        ({"starts_at": "1999-12-31T23:59:59+00:00", "ends_at": iso(60)}, "starts_at"),
        ({"starts_at": iso(0), "ends_at": "2101-01-01T00:00:00Z"}, "ends_at"),
        ({"starts_at": iso(60), "ends_at": iso(0)}, "ends_at"),
    ):
        status, body = await social.post("/api/host/flash-sales", host, {**base, **times})
        assert (status, body["error"]["field"]) == (400, field), times


async def test_flash_sale_that_could_make_an_uncharged_order_is_refused(social: Social) -> None:
    """sale_price_fen x per_user_limit above WeChat Pay's int32 of fen: 400 amount_too_large."""
    host_id, host = await social.shop.host()
    gid = await social.shop.goods(host_id, stock=10)
    body = {"goods_id": gid, "sale_price_fen": 2**31 - 1, "stock": 1, "per_user_limit": 2,
            "starts_at": iso(0), "ends_at": iso(3600)}  # fmt: skip
    status, answer = await social.post("/api/host/flash-sales", host, body, None)
    assert (status, answer["error"]["code"], answer["error"]["field"]) == (
        400, "amount_too_large", "sale_price_fen")  # fmt: skip
    status, _ = await social.post(
        "/api/host/flash-sales", host, {**body, "per_user_limit": 1}, None
    )
    assert status == 201
