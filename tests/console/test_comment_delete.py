"""DELETE /api/rooms/{room_id}/comments/{seq}: only a comment of that room is deleted — checked
against the room's history in Redis — once; over real HTTP, sockets, PostgreSQL and Redis."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import asyncpg

from livecommerce import keys
from livecommerce import redis_keys as rk
from livecommerce.auth.tokens import anonymous_subject, issue_token
from livecommerce.config import DEV_SECRET, Settings
from tests.console.conftest import Account, Console
from tests.realtime.viewer import TestViewer, wait_until
from tests.support import AppServer, http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def live_room(pool: asyncpg.Pool, host: Account) -> int:
    room: int = await pool.fetchval(
        "INSERT INTO live_rooms (host_id, title, state, started_at) VALUES ($1, 'r', 'live',"
        " now()) RETURNING id",
        host.id,
    )
    return room


async def commented(server: AppServer, room: int, text: str) -> tuple[TestViewer, int]:
    """A viewer in ``room`` that has commented ``text``; the comment frame's seq."""
    viewer = TestViewer(
        server.ws_url(), room, issue_token(DEV_SECRET, "viewer", anonymous_subject(), 3600)
    )
    await viewer.connect()
    await viewer.send({"type": "comment", "text": text})
    await wait_until(lambda: bool(viewer.of_type("comment")))
    return viewer, int(viewer.of_type("comment")[0]["seq"])


async def withdraw(server: AppServer, room: int, host: Account) -> int:
    """Publish a frame that is not a comment (``goods_withdraw``); its seq."""
    status, body = await http(
        "POST", f"{server.url}/api/rooms/{room}/withdraw", headers=bearer(host.token)
    )
    assert status == 200, body
    return await http_seq(server, room)


async def http_seq(server: AppServer, room: int) -> int:
    return await server.app[keys.BROKER].current_seq(room)


async def delete(server: AppServer, room: int, seq: int, host: Account) -> tuple[int, Any]:
    return await http(
        "DELETE", f"{server.url}/api/rooms/{room}/comments/{seq}", headers=bearer(host.token)
    )


async def test_a_comment_is_deleted_once_and_nothing_else_is(console: Console) -> None:
    """A comment of the room: one ``comment_delete`` frame; deleting it again answers the same
    frame's seq (``repeated``) and publishes nothing. A seq that is another kind of frame, one
    not published yet, or a comment of another room: 404 ``comment_not_found``, nothing
    published. Another host: 404 ``room_not_found``."""
    server = console.server
    alice, bob = await console.account(), await console.account()
    room, other_room = await live_room(console.pool, alice), await live_room(console.pool, alice)
    viewer, comment = await commented(server, room, "spam spam")
    not_a_comment = await withdraw(server, room, alice)
    top = await http_seq(server, room)

    for seq in (not_a_comment, top + 1, top + 1000):
        status, body = await delete(server, room, seq, alice)
        assert (status, body["error"]["code"]) == (404, "comment_not_found"), (seq, body)
    status, body = await delete(server, other_room, comment, alice)
    assert (status, body["error"]["code"]) == (404, "comment_not_found"), body
    status, body = await delete(server, room, comment, bob)
    assert (status, body["error"]["code"]) == (404, "room_not_found"), body
    assert await http_seq(server, room) == top  # nothing was published

    status, body = await delete(server, room, comment, alice)
    assert status == 200, body
    assert body == {"seq": top + 1, "checked": True, "repeated": False}
    await wait_until(lambda: bool(viewer.of_type("comment_delete")))
    assert viewer.of_type("comment_delete") == [
        {"seq": top + 1, "ts": viewer.of_type("comment_delete")[0]["ts"],
         "type": "comment_delete", "comment_seq": comment}
    ]  # fmt: skip
    status, again = await delete(server, room, comment, alice)
    assert (status, again) == (200, {"seq": top + 1, "checked": True, "repeated": True})
    # The deletion frame itself is not a comment either.
    status, body = await delete(server, room, top + 1, alice)
    assert (status, body["error"]["code"]) == (404, "comment_not_found"), body
    assert await http_seq(server, room) == top + 1
    await viewer.close()
    assert len(viewer.of_type("comment_delete")) == 1


async def test_a_seq_older_than_the_history_is_deleted_unchecked(
    make_server: Callable[..., Any], settings: Settings, pool: asyncpg.Pool
) -> None:
    """History keeps the last ``rooms.history_max_messages`` frames: a seq of the room's stream
    older than that cannot be checked, and its deletion is published (``checked: false``) —
    clients may still show the comment. Deleting it again while that deletion is in history
    is ``repeated``."""
    small = dataclasses.replace(
        settings, rooms=dataclasses.replace(settings.rooms, history_max_messages=3)
    )
    server: AppServer = await make_server(small)
    alice = await Console(server, pool).account()
    room = await live_room(pool, alice)
    viewer, comment = await commented(server, room, "old news")
    for _ in range(4):
        await withdraw(server, room, alice)
    top = await http_seq(server, room)
    status, body = await delete(server, room, comment, alice)
    assert (status, body) == (200, {"seq": top + 1, "checked": False, "repeated": False})
    status, body = await delete(server, room, comment, alice)
    assert (status, body) == (200, {"seq": top + 1, "checked": False, "repeated": True})
    await wait_until(lambda: bool(viewer.of_type("comment_delete")))
    assert viewer.of_type("comment_delete")[0]["comment_seq"] == comment
    await viewer.close()


async def test_a_seq_of_another_epoch_deletes_nothing(console: Console) -> None:
    """Seqs name frames within the room stream's epoch: when Redis loses the stream, a new
    epoch restarts them, and a comment seen before has the seq of another comment now. Given
    the epoch the comment was seen in (``?epoch=``, as the console sends it), another epoch's
    seq is 404 ``comment_not_found`` and publishes nothing; the current epoch's deletes."""
    server = console.server
    alice = await console.account()
    room = await live_room(console.pool, alice)
    viewer, comment = await commented(server, room, "before the loss")
    old_epoch = viewer.epoch
    assert old_epoch
    await viewer.close()
    # Redis loses the room's stream (emptied, or restarted without its data).
    await server.app[keys.REDIS].delete(
        rk.room_seq(room), rk.room_history(room), rk.room_state(room)
    )
    viewer2, comment2 = await commented(server, room, "after the loss")
    assert viewer2.epoch
    assert viewer2.epoch != old_epoch
    top = await http_seq(server, room)
    assert comment2 <= comment  # the seqs restarted: the old seq may name a new comment

    status, body = await http(
        "DELETE",
        f"{server.url}/api/rooms/{room}/comments/{comment2}?epoch={old_epoch}",
        headers=bearer(alice.token),
    )
    assert (status, body["error"]["code"]) == (404, "comment_not_found"), body  # type: ignore[index]
    assert await http_seq(server, room) == top  # nothing published
    status, body = await http(
        "DELETE",
        f"{server.url}/api/rooms/{room}/comments/{comment2}?epoch={viewer2.epoch}",
        headers=bearer(alice.token),
    )
    assert (status, body) == (200, {"seq": top + 1, "checked": True, "repeated": False}), body
    await wait_until(lambda: bool(viewer2.of_type("comment_delete")))
    assert viewer2.of_type("comment_delete")[0]["comment_seq"] == comment2
    await viewer2.close()
