"""Every social endpoint against malformed, oversized, unauthorized and replayed input."""

from __future__ import annotations

import asyncio
import io

import aiohttp
import pytest

from livecommerce.auth.tokens import issue_token
from livecommerce.config import DEV_SECRET
from tests.social.conftest import Social, iso

POSTS = [
    ("/api/host/flash-sales", "host"),
    ("/api/flash-sales/{id}/buy", "user"),
    ("/api/host/flash-sales/{id}/push", "host"),
    ("/api/points/actions", "user"),
    ("/api/points/checkout", "user"),
    ("/api/host/group-offers", "host"),
    ("/api/group-offers/{id}/groups", "user"),
    ("/api/groups/{id}/join", "user"),
]
USER_GETS = ["/api/points", "/api/points/expiring", "/api/points/history"]
PUBLIC_GETS = ["/api/flash-sales/{id}", "/api/groups/{id}", "/api/goods/{id}/groups"]


async def _raw(social: Social, method: str, path: str, data: bytes | io.BytesIO | None = None,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:  # fmt: skip
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, social.url + path, data=data, headers=headers or {}) as r,
    ):
        return r.status, await r.json()


@pytest.mark.parametrize(("path", "role"), POSTS)
async def test_posts_refuse_missing_and_wrong_tokens(social: Social, path: str, role: str) -> None:
    """No token: 401; a token of the other role: 403; a forged token: 401."""
    path = path.replace("{id}", "1")
    other = issue_token(DEV_SECRET, "host" if role == "user" else "user", 1, 60)
    headers = {"Idempotency-Key": "k", "Content-Type": "application/json"}
    assert (await _raw(social, "POST", path, b"{}", headers))[0] == 401
    wrong = {**headers, "Authorization": f"Bearer {other}"}
    status, body = await _raw(social, "POST", path, b"{}", wrong)
    assert (status, body["error"]["code"]) == (403, "wrong_role")  # type: ignore[index]
    forged = {**headers, "Authorization": "Bearer eyJrIjoidXNlciJ9.AAAA"}
    assert (await _raw(social, "POST", path, b"{}", forged))[0] == 401


@pytest.mark.parametrize("path", USER_GETS)
async def test_user_gets_refuse_missing_tokens(social: Social, path: str) -> None:
    """Reading points needs a user token."""
    assert (await _raw(social, "GET", path))[0] == 401
    host = issue_token(DEV_SECRET, "host", 1, 60)
    assert (await _raw(social, "GET", path, headers={"Authorization": f"Bearer {host}"}))[0] == 403


@pytest.mark.parametrize(("path", "role"), POSTS)
async def test_posts_refuse_malformed_and_oversized_bodies(
    social: Social, path: str, role: str
) -> None:
    """Broken JSON, a non-object, an unknown field: 400 naming it; over the body limit: 413."""
    _, user_token = await social.user()
    _, host_token = await social.shop.host()
    token = user_token if role == "user" else host_token
    path = path.replace("{id}", "1")
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "k",
               "Content-Type": "application/json"}  # fmt: skip
    for data, field in ((b"{nope", "body"), (b"[1, 2]", "body"), (b'{"zzz": 1}', "zzz")):
        status, body = await _raw(social, "POST", path, data, headers)
        assert (status, body["error"]["field"]) == (400, field), (path, data)  # type: ignore[index]
    big = b'{"a": "' + b"x" * 1_100_000 + b'"}'
    status, body = await _raw(social, "POST", path, io.BytesIO(big), headers)
    assert (status, body["error"]["code"]) == (413, "payload_too_large")  # type: ignore[index]


async def test_field_validation_names_the_field(social: Social) -> None:
    """Bad values name their field: types, ranges, timestamps, unknown actions, bad keys."""
    _, user = await social.user()
    _, host = await social.shop.host()
    cases = [
        ("/api/host/flash-sales", host, {"goods_id": 1, "sale_price_fen": 1, "stock": 1,
         "starts_at": "yesterday", "ends_at": iso(60)}, "starts_at"),
        ("/api/host/flash-sales", host, {"goods_id": 1, "sale_price_fen": 1, "stock": 1,
         "starts_at": "2030-01-01T00:00:00", "ends_at": iso(60)}, "starts_at"),
        ("/api/host/flash-sales", host, {"goods_id": 1, "sale_price_fen": -1, "stock": 1,
         "starts_at": iso(0), "ends_at": iso(60)}, "sale_price_fen"),
        ("/api/host/flash-sales", host, {"goods_id": 1, "sale_price_fen": 1, "stock": 1,
         "per_user_limit": 1000, "starts_at": iso(0), "ends_at": iso(60)}, "per_user_limit"),
        ("/api/points/actions", user, {"action": "dance"}, "action"),
        ("/api/points/actions", user, {"action": "share"}, "goods_id"),
        ("/api/points/actions", user, {"action": "checkin", "goods_id": 1}, "goods_id"),
        ("/api/points/checkout", user, {"goods_id": 1, "quantity": 1, "points": -1}, "points"),
        ("/api/host/group-offers", host, {"goods_id": 1, "group_price_fen": 1, "size": 1,
         "fill_seconds": 3600}, "size"),
        ("/api/flash-sales/1/buy", user, {"quantity": True}, "quantity"),
    ]  # fmt: skip
    for path, token, body, field in cases:
        status, answer = await social.post(path, token, body, "k")
        assert (status, answer["error"]["field"]) == (400, field), (path, body)
    status, answer = await social.post("/api/points/checkout", user, {}, "bad key!")
    assert (status, answer["error"]["field"]) == (400, "Idempotency-Key")
    status, answer = await social.post("/api/groups/1/join", user, None, None)
    assert (status, answer["error"]["field"]) == (400, "Idempotency-Key")


@pytest.mark.parametrize("path", PUBLIC_GETS)
async def test_unknown_and_garbage_ids_are_404(social: Social, path: str) -> None:
    """A missing id, a non-number or an out-of-range one: 404 in the uniform error shape."""
    for ident in ("999", "abc", "-1", "99999999999999999999"):
        status, body = await _raw(social, "GET", path.replace("{id}", ident))
        if path.endswith("/groups") and ident == "999":
            assert (status, body) == (200, {"items": []})
        else:
            assert status == 404, (path, ident)
            assert set(body) == {"error"}


async def test_oversized_query_values_are_refused(social: Social) -> None:
    """Limits and windows out of range and overlong cursors are 400s naming the parameter."""
    _, user = await social.user()
    for path, name in (("/api/points/history?limit=51", "limit"),
                       ("/api/points/history?limit=" + "9" * 40, "limit"),
                       ("/api/points/expiring?days=100000", "days"),
                       ("/api/points/history?cursor=" + "A" * 5000, "cursor"),
                       ("/api/goods/1/groups?limit=500", "limit")):  # fmt: skip
        status, body = await social.get(path, user)
        assert status == 400, path
        assert body["error"]["field"] == name


async def test_replays_answer_the_first_result(social: Social) -> None:
    """Replaying buy, checkout, open, join, check-in and share changes nothing the second time."""
    host_id, host = await social.shop.host()
    gid = await social.shop.goods(host_id, stock=50, price_fen=1000)
    _, sale = await social.post("/api/host/flash-sales", host, {
        "goods_id": gid, "sale_price_fen": 500, "stock": 5, "starts_at": iso(-5),
        "ends_at": iso(600)})  # fmt: skip
    _, offer = await social.post("/api/host/group-offers", host, {
        "goods_id": gid, "group_price_fen": 800, "size": 2, "fill_seconds": 600})  # fmt: skip
    _, user = await social.user()
    calls = [
        (f"/api/flash-sales/{sale['id']}/buy", None),
        ("/api/points/checkout", {"goods_id": gid, "quantity": 1, "points": 0}),
        (f"/api/group-offers/{offer['id']}/groups", None),
    ]
    for path, body in calls:
        first = await social.post(path, user, body, "replay-" + path.split("/")[2])
        again = await asyncio.gather(
            *(social.post(path, user, body, "replay-" + path.split("/")[2]) for _ in range(3))
        )
        assert first[0] == 201, (path, first)
        assert [s for s, _ in again] == [200, 200, 200]
        assert all(b == first[1] for _, b in again)
    assert await social.pool.fetchval("SELECT count(*) FROM orders") == 3
    for action in ({"action": "checkin"}, {"action": "share", "goods_id": gid}):
        one = await social.post("/api/points/actions", user, action)
        two = await social.post("/api/points/actions", user, action)
        assert (one[1]["credited"], two[1]["credited"]) == (True, False)
    # Reusing a key for another purchase is refused, not silently answered.
    status, body = await social.post(
        "/api/points/checkout", user, {"goods_id": gid, "quantity": 2, "points": 0},
        "replay-points")  # fmt: skip
    assert (status, body["error"]["code"]) == (409, "idempotency_key_reused")
