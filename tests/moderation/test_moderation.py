"""Comment moderation over real HTTP and WebSockets on real PostgreSQL and Valkey, with the
in-process fake WeChat answering msgSecCheck (pass / review / risky / outage)."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis

from livecommerce import keys
from livecommerce import redis_keys as rk
from livecommerce.auth.tokens import issue_token
from livecommerce.config import DEV_SECRET
from livecommerce.moderation.comments import Gate, Moderator
from livecommerce.moderation.rules import LOAD_SCRIPT
from tests.realtime.conftest import World
from tests.realtime.viewer import TestViewer, wait_until
from tests.support import AppServer, http


async def wechat_user(pool: asyncpg.Pool) -> tuple[int, str]:
    """A WeChat user (an openid the fake accepts) and its token."""
    uid = await pool.fetchval(
        "INSERT INTO users (openid) VALUES ($1) RETURNING id", "o" + secrets.token_hex(16)[:27]
    )
    return uid, issue_token(DEV_SECRET, "user", uid, 3600)


async def api(
    server: AppServer, method: str, path: str, token: str | None, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await http(method, server.url + path, json=body, headers=headers)


async def viewer(server: AppServer, world: World, token: str) -> TestViewer:
    v = TestViewer(server.ws_url(), world.room_id, token)
    await v.connect()
    return v


def errors(v: TestViewer, code: str) -> list[dict[str, Any]]:
    return [o for o in v.others if o.get("type") == "error" and o.get("code") == code]


def texts(v: TestViewer) -> list[str]:
    return [f["text"] for f in v.of_type("comment")]


async def comment(v: TestViewer, text: str, ref: str | None = None) -> None:
    await asyncio.sleep(1.05)  # rooms.comment_min_interval_seconds between one viewer's comments
    await v.send({"type": "comment", "text": text, **({"ref": ref} if ref else {})})


async def test_mute_unmute_and_list(server: AppServer, world: World, pool: asyncpg.Pool) -> None:
    """A muted user's comment is refused with `muted`; others still comment; unmute lifts it;
    a timed mute ends by itself; the mute survives the loss of Redis' copy."""
    uid, token = await wechat_user(pool)
    v = await viewer(server, world, token)
    watcher = await viewer(server, world, world.viewer_token())
    room = f"/api/rooms/{world.room_id}"
    status, m = await api(server, "POST", room + "/mutes", world.host_token,
                          {"user": {"kind": "user", "id": str(uid)}})  # fmt: skip
    assert status == 200, m
    assert m["user"] == {"kind": "user", "id": str(uid)}
    assert m["muted_until"] is None
    await v.send({"type": "comment", "text": "hello?", "ref": "c1"})
    await wait_until(lambda: errors(v, "muted"))
    assert errors(v, "muted")[0]["ref"] == "c1"
    assert errors(v, "muted")[0]["until"] is None
    status, listed = await api(server, "GET", room + "/mutes", world.host_token)
    assert status == 200
    assert [i["user"]["id"] for i in listed["items"]] == [str(uid)]

    # Redis loses the copy: rebuilt from PostgreSQL, the mute holds.
    redis: Redis = server.app[keys.REDIS]
    await redis.delete(rk.room_moderation(world.room_id), rk.room_mutes(world.room_id))
    await comment(v, "still muted?")
    await wait_until(lambda: len(errors(v, "muted")) == 2)

    status, body = await http("DELETE", f"{server.url}{room}/mutes?kind=user&id={uid}",
                              headers=world.host_headers())  # fmt: skip
    assert (status, body) == (200, {"unmuted": True})
    await comment(v, "back again")
    await wait_until(lambda: "back again" in texts(watcher))
    assert "hello?" not in texts(watcher)
    assert "still muted?" not in texts(watcher)

    # A timed mute: refused with its end, then over by itself.
    status, m = await api(server, "POST", room + "/mutes", world.host_token,
                          {"user": {"kind": "user", "id": str(uid)}, "seconds": 4})  # fmt: skip
    assert status == 200
    assert m["muted_until"] is not None
    await comment(v, "during")
    await wait_until(lambda: len(errors(v, "muted")) == 3)
    assert errors(v, "muted")[-1]["until"] is not None
    end = datetime.fromisoformat(m["muted_until"].replace("Z", "+00:00"))
    await asyncio.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 0.2)
    await comment(v, "after the mute")
    await wait_until(lambda: "after the mute" in texts(watcher))
    status, listed = await api(server, "GET", room + "/mutes", world.host_token)
    assert listed["items"] == []
    status, body = await http("DELETE", f"{server.url}{room}/mutes?kind=user&id={uid}",
                              headers=world.host_headers())  # fmt: skip
    assert (status, body) == (200, {"unmuted": False})
    await v.close()
    await watcher.close()


async def test_mute_an_anonymous_viewer_by_the_id_its_comments_show(
    server: AppServer, world: World
) -> None:
    v = await viewer(server, world, world.viewer_token())
    await v.send({"type": "comment", "text": "first"})
    await wait_until(lambda: texts(v) == ["first"])
    author = v.of_type("comment")[0]["user"]
    assert author["kind"] == "viewer"
    status, _ = await api(server, "POST", f"/api/rooms/{world.room_id}/mutes", world.host_token,
                          {"user": author, "seconds": 600})  # fmt: skip
    assert status == 200
    await comment(v, "second")
    await wait_until(lambda: errors(v, "muted"))
    assert texts(v) == ["first"]
    await v.close()


async def test_room_mute_lets_only_the_host_comment(server: AppServer, world: World) -> None:
    room = f"/api/rooms/{world.room_id}/moderation"
    v = await viewer(server, world, world.viewer_token())
    host = await viewer(server, world, world.host_token)
    other_host = await viewer(server, world, world.other_host_token)
    status, s = await api(server, "PATCH", room, world.host_token, {"room_muted": True})
    assert status == 200
    assert s["room_muted"] is True
    await v.send({"type": "comment", "text": "viewer talks"})
    await other_host.send({"type": "comment", "text": "other host talks"})
    await host.send({"type": "comment", "text": "host talks"})
    await wait_until(lambda: errors(v, "room_muted") and errors(other_host, "room_muted"))
    await wait_until(lambda: texts(v) == ["host talks"])
    status, s = await api(server, "PATCH", room, world.host_token, {"room_muted": False})
    assert s["room_muted"] is False
    await comment(v, "viewer again")
    await wait_until(lambda: texts(v) == ["host talks", "viewer again"])
    for x in (v, host, other_host):
        await x.close()


async def test_blocked_words_are_refused_to_their_author(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    room = f"/api/rooms/{world.room_id}/moderation"
    status, s = await api(server, "PATCH", room, world.host_token,
                          {"blocked_words": [" Cheap  Watches ", "cheap watches", "代购"]})  # fmt: skip
    assert status == 200
    assert s["blocked_words"] == ["Cheap Watches", "代购"]
    assert (await api(server, "GET", room, world.host_token))[1]["blocked_words"] == s[
        "blocked_words"
    ]
    _, token = await wechat_user(pool)
    v = await viewer(server, world, token)
    await v.send({"type": "comment", "text": "ＣＨＥＡＰ watches here", "ref": "w1"})
    await wait_until(lambda: errors(v, "blocked_word"))
    assert errors(v, "blocked_word")[0]["ref"] == "w1"
    await comment(v, "找代购吗")
    await wait_until(lambda: len(errors(v, "blocked_word")) == 2)
    await comment(v, "nice watch")
    await wait_until(lambda: texts(v) == ["nice watch"])
    # The list is replaced (and the change reaches the comment path at once).
    await api(server, "PATCH", room, world.host_token, {"blocked_words": []})
    await comment(v, "cheap watches now fine")
    await wait_until(lambda: texts(v) == ["nice watch", "cheap watches now fine"])
    await v.close()


async def test_each_content_check_verdict(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """pass → published; risky → refused to the author only; review → held, approved by the
    host (published once), or rejected (never published)."""
    fake = server.app[keys.FAKE_WECHAT]
    _, token = await wechat_user(pool)
    v = await viewer(server, world, token)
    watcher = await viewer(server, world, world.viewer_token())
    await v.send({"type": "comment", "text": "lovely scarf"})
    await wait_until(lambda: texts(watcher) == ["lovely scarf"])
    assert fake.checked_texts[-1] == "lovely scarf"
    assert fake.checked_scenes[-1] == 2
    await comment(v, "this is risky stuff", ref="r")
    await wait_until(lambda: errors(v, "content_risky"))
    await comment(v, "please review me")
    await wait_until(lambda: errors(v, "comment_held"))
    await comment(v, "review me too")
    await wait_until(lambda: len(errors(v, "comment_held")) == 2)
    held_ids = [e["held_id"] for e in errors(v, "comment_held")]

    base = f"/api/rooms/{world.room_id}/held-comments"
    status, listed = await api(server, "GET", base, world.host_token)
    assert status == 200
    assert [(h["id"], h["text"], h["reason"]) for h in listed["items"]] == [
        (held_ids[0], "please review me", "review"), (held_ids[1], "review me too", "review")
    ]  # fmt: skip
    status, ok = await api(server, "POST", f"{base}/{held_ids[0]}/approve", world.host_token)
    assert status == 200
    assert ok["status"] == "approved"
    assert ok["seq"] > 0
    status, again = await api(server, "POST", f"{base}/{held_ids[0]}/approve", world.host_token)
    assert status == 409
    assert again["error"]["code"] == "already_decided"
    status, no = await api(server, "POST", f"{base}/{held_ids[1]}/reject", world.host_token)
    assert status == 200
    assert no["status"] == "rejected"
    assert no["seq"] is None
    await wait_until(lambda: "please review me" in texts(watcher))
    await asyncio.sleep(0.3)
    assert texts(watcher) == ["lovely scarf", "please review me"]
    approved = [f for f in watcher.of_type("comment") if f["text"] == "please review me"]
    assert approved[0]["seq"] == ok["seq"]
    assert (await api(server, "GET", base, world.host_token))[1]["items"] == []
    await v.close()
    await watcher.close()


async def test_outage_follows_the_room_policy(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """WeChat's check down: `show` publishes (logged), `hold` holds for the host; the socket
    keeps answering other frames while a slow check is pending."""
    fake = server.app[keys.FAKE_WECHAT]
    _, token = await wechat_user(pool)
    v = await viewer(server, world, token)
    watcher = await viewer(server, world, world.viewer_token())
    fake.sec_check_down = True
    await v.send({"type": "comment", "text": "during the outage"})
    await wait_until(lambda: texts(watcher) == ["during the outage"])  # default policy: show
    status, _ = await api(server, "PATCH", f"/api/rooms/{world.room_id}/moderation",
                          world.host_token, {"unchecked_policy": "hold"})  # fmt: skip
    assert status == 200
    await comment(v, "held while down")
    await wait_until(lambda: errors(v, "comment_held"))
    _, listed = await api(server, "GET", f"/api/rooms/{world.room_id}/held-comments",
                          world.host_token)  # fmt: skip
    assert [(h["text"], h["reason"]) for h in listed["items"]] == [("held while down", "unchecked")]
    # Back up, but slow: a pending check does not stop the socket answering a ping.
    fake.sec_check_down, fake.sec_check_delay = False, 3.0
    await comment(v, "slow but fine")
    await v.send({"type": "ping", "t": 7})
    await wait_until(lambda: any(o.get("type") == "pong" for o in v.others), within=2.5)
    assert "slow but fine" not in texts(watcher)
    await wait_until(lambda: "slow but fine" in texts(watcher))
    assert texts(watcher) == ["during the outage", "slow but fine"]
    await v.close()
    await watcher.close()


async def test_anonymous_comments_follow_the_policy(server: AppServer, world: World) -> None:
    """An anonymous viewer has no openid to check with: `hold` holds its comments."""
    await api(server, "PATCH", f"/api/rooms/{world.room_id}/moderation", world.host_token,
              {"unchecked_policy": "hold"})  # fmt: skip
    v = await viewer(server, world, world.viewer_token())
    await v.send({"type": "comment", "text": "anon says hi"})
    await wait_until(lambda: errors(v, "comment_held"))
    assert texts(v) == []
    await v.close()


async def test_ownership_auth_and_bad_input(server: AppServer, world: World) -> None:
    room = f"/api/rooms/{world.room_id}"
    other, viewer_token = world.other_host_token, world.viewer_token()
    user = issue_token(DEV_SECRET, "user", 1, 3600)
    mute = {"user": {"kind": "user", "id": "5"}}
    calls = [
        ("GET", room + "/moderation", None), ("PATCH", room + "/moderation", {"room_muted": True}),
        ("GET", room + "/mutes", None), ("POST", room + "/mutes", mute),
        ("DELETE", room + "/mutes?kind=user&id=5", None), ("GET", room + "/held-comments", None),
        ("POST", room + "/held-comments/1/approve", None),
        ("POST", room + "/held-comments/1/reject", None),
    ]  # fmt: skip
    for method, path, body in calls:
        assert (await api(server, method, path, None, body))[0] == 401, path
        assert (await api(server, method, path, viewer_token, body))[0] == 403, path
        assert (await api(server, method, path, user, body))[0] == 403, path
        status, answer = await api(server, method, path, other, body)
        assert status == 404, (path, answer)
        assert answer["error"]["code"] == "room_not_found", (path, answer)
    status, answer = await api(server, "POST", room + "/held-comments/999/approve",
                               world.host_token)  # fmt: skip
    assert status == 404
    assert answer["error"]["code"] == "held_comment_not_found"
    bad = [
        ("POST", room + "/mutes", {"user": {"kind": "admin", "id": "5"}}),
        ("POST", room + "/mutes", {"user": {"kind": "user", "id": "5 OR 1=1"}}),
        ("POST", room + "/mutes", {"user": {"kind": "user", "id": "5"}, "seconds": 0}),
        ("POST", room + "/mutes", {"user": {"kind": "user", "id": "5"}, "extra": 1}),
        ("PATCH", room + "/moderation", {"unchecked_policy": "delete"}),
        ("PATCH", room + "/moderation", {"blocked_words": ["x" * 33]}),
        ("PATCH", room + "/moderation", {"blocked_words": ["w"] * 201}),
        ("DELETE", room + "/mutes?kind=user", None),
    ]
    for method, path, body in bad:
        status, answer = await api(server, method, path, world.host_token, body)
        assert status == 400, (path, body, answer)
        assert answer["error"]["code"] == "invalid", (path, body, answer)
    # Nothing of that was stored.
    _, s = await api(server, "GET", room + "/moderation", world.host_token)
    assert s == {"room_muted": False, "unchecked_policy": "show", "blocked_words": []}


async def test_bad_comment_ref_is_refused(server: AppServer, world: World) -> None:
    v = await viewer(server, world, world.viewer_token())
    await v.send({"type": "comment", "text": "x", "ref": "r" * 65})
    await wait_until(lambda: errors(v, "invalid"))
    assert texts(v) == []
    await v.close()


class Sink:
    """The connection side of a comment (what ``Moderator`` writes answers to)."""

    def __init__(self, room_id: int) -> None:
        self.room_id = room_id
        self.sent: list[dict[str, Any]] = []

    def send(self, payload: bytes) -> None:
        self.sent.append(orjson.loads(payload))


async def test_bounded_queue_and_shutdown_lose_nothing(
    server: AppServer, world: World, pool: asyncpg.Pool, redis: Redis
) -> None:
    """One worker, one queue slot: a third comment is refused at once (`unavailable`); on
    shutdown, the comment WeChat was still checking and the queued one are held."""
    fake = server.app[keys.FAKE_WECHAT]
    fake.sec_check_delay = 3.0
    moderator = Moderator(
        gate=Gate(redis, pool), broker=server.app[keys.BROKER], pool=pool,
        wechat=server.app[keys.WECHAT_CLIENT], workers=1, queue_max=1,
    )  # fmt: skip
    users = [await wechat_user(pool) for _ in range(3)]
    sinks = [Sink(world.room_id) for _ in users]
    first = {"kind": "user", "id": str(users[0][0])}
    assert await moderator.screen(sinks[0], first, "one", None) is None
    await wait_until(lambda: moderator.queue.empty())  # the worker took it (WeChat is slow)
    second = {"kind": "user", "id": str(users[1][0])}
    assert await moderator.screen(sinks[1], second, "two", None) is None
    third = {"kind": "user", "id": str(users[2][0])}
    refused = await moderator.screen(sinks[2], third, "three", "r3")
    assert refused is not None
    assert refused["code"] == "unavailable"
    assert refused["ref"] == "r3"
    await moderator.close(within=0.2)
    rows = await pool.fetch(
        "SELECT text, reason, status FROM held_comments WHERE room_id = $1 ORDER BY text",
        world.room_id,
    )
    assert [tuple(r) for r in rows] == [("one", "unchecked", "held"), ("two", "unchecked", "held")]
    after = await moderator.screen(sinks[0], first, "late", None)
    assert after is not None
    assert after["code"] == "unavailable"


async def test_rules_changed_on_one_node_apply_on_another(
    make_server: Any, world: World, pool: asyncpg.Pool
) -> None:
    """Two nodes on one Redis: a node that cached the room's words sees a change made through
    the other at its next comment; a mute made through one is enforced on the other."""
    a: AppServer = await make_server()
    b: AppServer = await make_server()
    room = f"/api/rooms/{world.room_id}"
    await api(a, "PATCH", room + "/moderation", world.host_token, {"blocked_words": ["alpha"]})
    uid, token = await wechat_user(pool)
    v = await viewer(b, world, token)
    await v.send({"type": "comment", "text": "alpha one"})
    await wait_until(lambda: errors(v, "blocked_word"))  # node b cached ["alpha"]
    await api(a, "PATCH", room + "/moderation", world.host_token, {"blocked_words": ["beta"]})
    await comment(v, "alpha two")
    await wait_until(lambda: texts(v) == ["alpha two"])
    await comment(v, "beta one")
    await wait_until(lambda: len(errors(v, "blocked_word")) == 2)
    await api(
        a, "POST", room + "/mutes", world.host_token, {"user": {"kind": "user", "id": str(uid)}}
    )
    await comment(v, "gamma")
    await wait_until(lambda: errors(v, "muted"))
    assert texts(v) == ["alpha two"]
    await v.close()


async def test_an_older_copy_never_replaces_a_newer_one(
    server: AppServer, world: World, redis: Redis
) -> None:
    """The load script refuses a version older than Redis holds (a rebuild that read
    PostgreSQL before a change and writes after it cannot undo the change)."""
    room = f"/api/rooms/{world.room_id}/moderation"
    await api(server, "PATCH", room, world.host_token, {"room_muted": True})
    await api(server, "PATCH", room, world.host_token, {"blocked_words": ["x"]})
    key = rk.room_moderation(world.room_id)
    assert await redis.hget(key, "v") == b"2"
    stale = [1, world.host_id, 0, "show", "[]", 60]
    assert await redis.eval(LOAD_SCRIPT, 2, key, rk.room_mutes(world.room_id), *stale) == 0
    assert await redis.hget(key, "muted") == b"1"
    assert await redis.hget(key, "words") == b'["x"]'
