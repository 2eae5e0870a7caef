"""Trying to break the analytics ingestion's one-pass decode and the socket's track head
(2026-11-30, second round): frames orjson reads that msgspec's passes read otherwise.

Real PostgreSQL and Valkey, a real viewer socket.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import websockets

from tests.growth.analytics.test_writer_break import deep_event
from tests.realtime.conftest import World
from tests.support import AppServer


async def answers_to(server: AppServer, world: World, frames: list[str]) -> list[dict[str, Any]]:
    """Each frame's answer on one viewer socket (which must stay open throughout)."""
    out = []
    async with websockets.connect(
        f"{server.ws_url()}?room={world.room_id}&token={world.viewer_token()}"
    ) as ws:
        json.loads(await ws.recv())
        for frame in frames:
            await ws.send(frame)
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if msg.get("type") in ("tracked", "error") and "seq" not in msg:
                    break
            out.append(msg)
    return out


async def test_later_event_nested_past_msgspec_after_a_malformed_one(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """A track frame whose first event fails the typed decode and a later one nests past
    msgspec's depth (within orjson's): the one-pass decode's second pass (each event's span)
    raised RecursionError out of the tracker: the viewer's socket was closed with 1011 and
    an ERROR traceback logged. Now each bad event is rejected and the good one stored."""
    good = uuid.uuid4()
    deep_list = "[" * 1010 + "]" * 1010
    frames = [
        '{"type":"track","ref":"d1","events":[{"id":5,"type":"page_view"},'
        f'{{"id":"{good}","type":"page_view"}},{deep_event(1010)}]}}',
        f'{{"type":"track","ref":"d2","events":{deep_list}}}',
    ]
    got = await answers_to(server, world, frames)
    assert got[0]["type"] == "tracked", got
    assert got[0]["stored"] == 1, got
    assert [(r["index"], r["code"]) for r in got[0]["rejected"]] == [(0, "invalid"), (2, "invalid")]
    assert got[1]["type"] == "tracked", got
    assert [(r["index"], r["code"]) for r in got[1]["rejected"]] == [(0, "invalid")]
    assert {
        str(r["event_id"]) for r in await pool.fetch("SELECT event_id FROM analytics_events")
    } == {str(good)}


async def test_duplicate_events_key_read_as_the_general_path_reads_it(
    server: AppServer, world: World, pool: asyncpg.Pool
) -> None:
    """A frame naming ``events`` twice, a non-list then a list: JSON readers (orjson, the
    general path, and the server before the track head) take the last, so its events were
    stored; the track head took the last too, but the tracker re-read the frame typed and met
    the first: ``invalid`` "events cannot be read". Now both ways store the last one's."""
    ids = [uuid.uuid4(), uuid.uuid4()]
    frames = [
        f'{{"type":"track","ref":"e1","events":5,"events":[{{"id":"{ids[0]}","type":"share"}}]}}',
        # Spelled so the head does not read it (the general path).
        f'{{"type":"trac\\u006b","ref":"e2","events":{{}},'
        f'"events":[{{"id":"{ids[1]}","type":"share"}}]}}',
    ]
    got = await answers_to(server, world, frames)
    assert [(a["type"], a.get("ref"), a.get("stored")) for a in got] == [
        ("tracked", "e1", 1),
        ("tracked", "e2", 1),
    ], got
    stored = {str(r["event_id"]) for r in await pool.fetch("SELECT event_id FROM analytics_events")}
    assert stored == {str(i) for i in ids}


async def test_missing_events_is_not_a_list_either_way(server: AppServer, world: World) -> None:
    """A track frame without ``events`` (or with ``null``) is ``invalid`` "events must be a
    list" (docs/protocol.md), checked before ``offset_ms``. Read by the general path (a type
    spelled with an escape, so the head does not read it) ``None`` was taken for "not decoded
    yet": the tracker answered "events cannot be read: Object missing required field", and a
    bad offset_ms was named instead."""
    frames = [
        '{"type":"track","ref":"m1"}',
        '{"type":"trac\\u006b","ref":"m2"}',
        '{"type":"trac\\u006b","ref":"m3","events":null}',
        '{"type":"trac\\u006b","ref":"m4","offset_ms":"x"}',
    ]
    got = await answers_to(server, world, frames)
    assert [(a["type"], a["code"], a.get("ref"), a["message"]) for a in got] == [
        ("error", "invalid", f"m{i}", "events must be a list") for i in range(1, 5)
    ], got
