"""Room REST endpoints: host actions, scoping, validation, and that viewers can never act as hosts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest

from livecommerce.auth.tokens import issue_token
from livecommerce.config import DEV_SECRET, Settings
from tests.realtime.conftest import World
from tests.support import AppServer, http

HOST_ACTIONS = [
    ("POST", "/api/rooms", {"title": "x"}),
    ("POST", "/api/rooms/{room}/start", None),
    ("POST", "/api/rooms/{room}/end", None),
    ("POST", "/api/rooms/{room}/goods", {"goods_ids": [1]}),
    ("POST", "/api/rooms/{room}/push", {"goods_id": 1}),
    ("POST", "/api/rooms/{room}/withdraw", None),
]


@pytest.mark.parametrize(("method", "path", "body"), HOST_ACTIONS)
async def test_viewer_and_user_tokens_cannot_act_as_host(
    server: AppServer, world: World, method: str, path: str, body: object
) -> None:
    """Every host action answers 403 to viewer/user tokens and 401 without or with a forged token."""
    url = server.url + path.format(room=world.room_id)
    for token in (world.viewer_token(), issue_token(DEV_SECRET, "user", 1, 60)):
        status, resp = await http(
            method, url, json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert status == 403, resp
        assert resp["error"]["code"] == "wrong_role"  # type: ignore[index]
    assert (await http(method, url, json=body))[0] == 401
    forged = world.host_token[:-2] + ("AA" if not world.host_token.endswith("AA") else "BB")
    assert (await http(method, url, json=body, headers={"Authorization": f"Bearer {forged}"}))[
        0
    ] == 401
    expired = issue_token(DEV_SECRET, "host", world.host_id, 10, now=1_000_000)
    status, resp = await http(
        method, url, json=body, headers={"Authorization": f"Bearer {expired}"}
    )
    assert status == 401
    assert resp["error"]["code"] == "token_expired"  # type: ignore[index]


async def test_room_lifecycle(server: AppServer, world: World) -> None:
    """create -> attach goods -> start -> push -> withdraw -> end; illegal transitions are 409."""
    h = world.host_headers()
    evening = (datetime.now(UTC) + timedelta(days=30)).astimezone(timezone(timedelta(hours=8)))
    status, room = await http(
        "POST",
        server.url + "/api/rooms",
        json={"title": "Evening show", "planned_start_at": evening.isoformat()},
        headers=h,
    )
    assert status == 201, room
    rid = room["id"]  # type: ignore[index]
    assert room["state"] == "scheduled"  # type: ignore[index]
    status, body = await http(
        "POST",
        f"{server.url}/api/rooms/{rid}/goods",
        json={"goods_ids": world.goods_ids[:2]},
        headers=h,
    )
    assert status == 200, body
    assert [g["id"] for g in body["goods"]] == world.goods_ids[:2]  # type: ignore[index]
    status, body = await http(
        "POST",
        f"{server.url}/api/rooms/{rid}/push",
        json={"goods_id": world.goods_ids[0]},
        headers=h,
    )
    assert status == 409
    assert body["error"]["code"] == "room_not_live"  # type: ignore[index]
    assert (await http("POST", f"{server.url}/api/rooms/{rid}/start", headers=h))[1][
        "state"
    ] == "live"  # type: ignore[index]
    status, body = await http(
        "POST",
        f"{server.url}/api/rooms/{rid}/push",
        json={"goods_id": world.goods_ids[0]},
        headers=h,
    )
    assert status == 201, body
    status, body = await http(
        "POST",
        f"{server.url}/api/rooms/{rid}/push",
        json={"goods_id": world.goods_ids[2]},
        headers=h,
    )
    assert status == 404
    assert body["error"]["code"] == "goods_not_in_room"  # type: ignore[index]
    assert (await http("POST", f"{server.url}/api/rooms/{rid}/withdraw", headers=h))[0] == 200
    assert (await http("POST", f"{server.url}/api/rooms/{rid}/end", headers=h))[1][
        "state"
    ] == "ended"  # type: ignore[index]
    status, body = await http("POST", f"{server.url}/api/rooms/{rid}/start", headers=h)
    assert status == 409
    assert body["error"]["code"] == "illegal_transition"  # type: ignore[index]
    # An ended room cannot start again, so a push says it has ended (not "start it first").
    status, body = await http(
        "POST", f"{server.url}/api/rooms/{rid}/push", json={"goods_id": world.goods_ids[0]},
        headers=h,
    )  # fmt: skip
    assert (status, body["error"]["code"]) == (409, "room_ended")  # type: ignore[index]
    status, body = await http("GET", f"{server.url}/api/rooms/{rid}")
    assert status == 200
    assert body["state"] == "ended"  # type: ignore[index]


async def test_other_hosts_room_is_404(server: AppServer, world: World) -> None:
    """A host token for another host cannot touch this room, and learns nothing (404)."""
    h = {"Authorization": f"Bearer {world.other_host_token}"}
    for _method, path, body in HOST_ACTIONS[1:]:
        status, resp = await http(
            "POST", server.url + path.format(room=world.room_id), json=body, headers=h
        )
        assert status == 404, (path, resp)


async def test_push_replay_with_idempotency_key_publishes_once(
    server: AppServer, world: World
) -> None:
    """The same push sent twice with one idempotency key publishes one frame."""
    h = world.host_headers()
    url = f"{server.url}/api/rooms/{world.room_id}/push"
    body = {"goods_id": world.goods_ids[0], "idempotency_key": "k-1"}
    s1, r1 = await http("POST", url, json=body, headers=h)
    s2, r2 = await http("POST", url, json=body, headers=h)
    assert (s1, s2) == (201, 200)
    assert r1["seq"] == r2["seq"]  # type: ignore[index]
    assert r2["duplicate"] is True  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "goods_id"),
        ({"goods_id": "1"}, "goods_id"),
        ({"goods_id": True}, "goods_id"),
        ({"goods_id": 1, "show_seconds": 0}, "show_seconds"),
        ({"goods_id": 1, "show_seconds": 1.5}, "show_seconds"),
        ({"goods_id": 1, "idempotency_key": "x" * 101}, "idempotency_key"),
    ],
)
async def test_push_validation(
    server: AppServer, world: World, body: dict[str, object], field: str
) -> None:
    """Bad push bodies are 400 naming the field."""
    status, resp = await http(
        "POST",
        f"{server.url}/api/rooms/{world.room_id}/push",
        json=body,
        headers=world.host_headers(),
    )
    assert status == 400
    assert resp["error"]["field"] == field  # type: ignore[index]


async def test_malformed_and_oversized_bodies(server: AppServer, world: World) -> None:
    """Non-JSON, non-object and oversized bodies get 400/413 JSON errors, never 500."""
    h = {**world.host_headers(), "Content-Type": "application/json"}
    url = server.url + "/api/rooms"
    assert (await http("POST", url, data=b"{nope", headers=h))[1]["error"]["field"] == "body"  # type: ignore[index]
    assert (await http("POST", url, data=b"[1,2]", headers=h))[0] == 400
    status, body = await http("POST", url, json={"title": "x" * 201}, headers=h)
    assert (status, body["error"]["field"]) == (400, "title")  # type: ignore[index]
    status, body = await http(
        "POST", url, json={"title": "t", "planned_start_at": "tomorrow"}, headers=h
    )
    assert (status, body["error"]["field"]) == (400, "planned_start_at")  # type: ignore[index]
    assert (await http("GET", server.url + "/api/rooms/abc"))[0] == 404
    assert (await http("GET", server.url + "/api/rooms/99999999"))[0] == 404
    status, body = await http(
        "POST",
        f"{server.url}/api/rooms/{world.room_id}/goods",
        json={"goods_ids": [999999]},
        headers=h,
    )
    assert (status, body["error"]["field"]) == (400, "goods_ids")  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": " "}, "title"),
        ({"title": "\u3000\t\n"}, "title"),  # ideographic space, tab, newline: still blank
        ({"title": "\u200b\ufeff\u2060"}, "title"),  # zero-width characters alone: blank
        ({"title": "Show", "cover_url": "javascript:alert(1)"}, "cover_url"),
        ({"title": "Show", "cover_url": "data:image/png;base64,iVBORw0KGgo="}, "cover_url"),
        ({"title": "Show", "cover_url": "rtmp://live.example.com/w/1"}, "cover_url"),
        ({"title": "Show", "cover_url": ""}, "cover_url"),
        ({"title": "Show", "cover_url": "https://"}, "cover_url"),
        ({"title": "Show", "cover_url": "https://cdn.example.com/a b.png"}, "cover_url"),
        ({"title": "Show", "stream_url": "javascript:alert(1)"}, "stream_url"),
        ({"title": "Show", "stream_url": "file:///etc/passwd"}, "stream_url"),
        ({"title": "Show", "stream_url": "vbscript:msgbox"}, "stream_url"),
        ({"title": "Show", "stream_url": "rtmp:///no-host"}, "stream_url"),
    ],
)
async def test_room_input_is_checked(
    server: AppServer, world: World, pool: asyncpg.Pool, body: dict[str, Any], field: str
) -> None:
    """A blank title and a cover or stream URL a page or <live-player> must not load (not http(s),
    or rtmp for the stream) are 400s naming the field; nothing is stored."""
    before = await pool.fetchval("SELECT count(*) FROM live_rooms")
    status, resp = await http(
        "POST", server.url + "/api/rooms", json=body, headers=world.host_headers()
    )
    assert (status, resp["error"]["field"]) == (400, field), resp  # type: ignore[index]
    assert await pool.fetchval("SELECT count(*) FROM live_rooms") == before


async def test_room_urls_that_play_are_accepted_and_documented(
    server: AppServer, world: World
) -> None:
    """https covers, rtmp and HTTP-FLV streams are accepted; the OpenAPI document carries the
    rules (patterns) of the title and both URLs."""
    for stream in ("rtmp://live.example.com/w/1", "https://live.example.com/w/1.flv"):
        status, room = await http(
            "POST", server.url + "/api/rooms", headers=world.host_headers(),
            json={"title": " Show ", "cover_url": "https://cdn.example.com/c.png?v=2",
                  "stream_url": stream},
        )  # fmt: skip
        assert status == 201, room
        assert room["stream_url"] == stream  # type: ignore[index]
    _, doc = await http("GET", server.url + "/api/openapi.json")
    props = doc["components"]["schemas"]["RoomCreate"]["properties"]  # type: ignore[index]
    assert "pattern" in props["title"]
    assert "https?" in props["cover_url"]["anyOf"][0]["pattern"]
    assert "rtmp" in props["stream_url"]["anyOf"][0]["pattern"]


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
async def test_times_outside_the_utc_calendar_are_400(
    server: AppServer, world: World, when: str
) -> None:
    """A valid RFC 3339 time that overflows in UTC is a 400 on its field, not a 500."""
    status, body = await http(
        "POST", server.url + "/api/rooms", json={"title": "t", "planned_start_at": when},
        headers=world.host_headers(),
    )  # fmt: skip
    assert (status, body["error"]["field"]) == (400, "planned_start_at")  # type: ignore[index]


@pytest.mark.parametrize(
    ("when", "message"),
    [
        pytest.param(timedelta(days=-2), "in the past", id="2-days-ago"),
        pytest.param(timedelta(days=-1, minutes=-5), "in the past", id="a-day-and-5-min-ago"),
        pytest.param(timedelta(days=367), "ahead", id="367-days-ahead"),
        pytest.param("0001-01-01T00:00:00Z", "in the past", id="year-1"),
        pytest.param("1970-01-01T00:00:00Z", "in the past", id="epoch"),
        pytest.param("9999-12-31T00:00:00Z", "ahead", id="year-9999"),
        pytest.param("2999-01-01T08:00:00+08:00", "ahead", id="year-2999"),
    ],
)
async def test_planned_start_must_be_near(
    server: AppServer, world: World, pool: asyncpg.Pool, when: str | timedelta, message: str
) -> None:
    """``planned_start_at`` more than a day in the past or more than 366 days ahead (a typo such
    as year 1 or 9999) is a 400 on the field; nothing is stored."""
    if isinstance(when, timedelta):
        when = (datetime.now(UTC) + when).isoformat()
    before = await pool.fetchval("SELECT count(*) FROM live_rooms")
    status, body = await http(
        "POST", server.url + "/api/rooms", json={"title": "t", "planned_start_at": when},
        headers=world.host_headers(),
    )  # fmt: skip
    assert status == 400, body
    assert (body["error"]["code"], body["error"]["field"]) == ("invalid", "planned_start_at")  # type: ignore[index]
    assert message in body["error"]["message"]  # type: ignore[index]
    assert await pool.fetchval("SELECT count(*) FROM live_rooms") == before


@pytest.mark.parametrize(
    "delta",
    [
        pytest.param(timedelta(hours=-23), id="23-hours-ago"),  # a show begun before its room
        pytest.param(timedelta(minutes=-1), id="a-minute-ago"),  # datetime-local has no seconds
        pytest.param(timedelta(hours=2), id="in-2-hours"),
        pytest.param(timedelta(days=365), id="365-days-ahead"),
    ],
)
async def test_planned_start_near_now_is_accepted(
    server: AppServer, world: World, delta: timedelta
) -> None:
    """Up to a day in the past and up to 366 days ahead are fine, in any zone offset."""
    when = (datetime.now(UTC) + delta).astimezone(timezone(timedelta(hours=-5)))
    status, room = await http(
        "POST", server.url + "/api/rooms",
        json={"title": "t", "planned_start_at": when.isoformat()},
        headers=world.host_headers(),
    )  # fmt: skip
    assert status == 201, room
    got = datetime.fromisoformat(room["planned_start_at"])  # type: ignore[index]
    assert got == when


async def test_viewer_token_endpoint(server: AppServer) -> None:
    """Anyone can get an anonymous viewer token."""
    status, body = await http("POST", server.url + "/api/tokens/viewer")
    assert status == 201
    assert body["kind"] == "viewer"  # type: ignore[index]


async def test_oversized_body_is_413(
    make_server: Callable[..., Any], settings: Settings, world: World
) -> None:
    """A body over server.max_body_bytes gets 413 payload_too_large and creates nothing."""
    srv: AppServer = await make_server(settings.with_server(max_body_bytes=1000))
    h = {**world.host_headers(), "Content-Type": "application/json"}
    big = b'{"title": "' + b"x" * 5000 + b'"}'
    status, body = await http("POST", srv.url + "/api/rooms", data=big, headers=h)
    assert status == 413
    assert body["error"]["code"] == "payload_too_large"  # type: ignore[index]
