"""A node killed (SIGKILL) while viewers watch, pushes are published and scheduled pushes fall due.

Two real ``livecommerce serve`` processes share PostgreSQL and Redis, both running the timer
dispatcher (with a 1 s claim lease, so a claim held by the dead node is taken over quickly).
One is killed with ``kill -9`` in the middle of a burst of scheduled pushes and host pushes;
its viewers reconnect to the survivor (as behind a load balancer) and resume. Every viewer must
end with every frame exactly once (or an explicit ``resync``) and every scheduled push must
fire exactly once — recorded once in PostgreSQL, delivered once to every viewer.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from livecommerce.embedded import EmbeddedUrls
from tests.faults.conftest import RecordingViewer
from tests.realtime.conftest import World, make_world
from tests.realtime.viewer import wait_until
from tests.support import ServeProcess, child_env, http

SCHEDULES = 30
VIEWERS_PER_NODE = 10


async def _push(base: str, world: World, i: int) -> int:
    status, body = await http(
        "POST", f"{base}/api/rooms/{world.room_id}/push",
        json={"goods_id": world.goods_ids[i % 3]}, headers=world.host_headers(),
    )  # fmt: skip
    assert status == 201, body
    return int(body["seq"])  # type: ignore[index]


async def _schedule(base: str, world: World, i: int, at: datetime) -> int:
    status, body = await http(
        "POST", f"{base}/api/rooms/{world.room_id}/schedules",
        json={"idempotency_key": f"kill-{i}", "goods_id": world.goods_ids[i % 3],
              "at": at.isoformat()},
        headers=world.host_headers(),
    )  # fmt: skip
    assert status == 201, body
    return int(body["id"])  # type: ignore[index]


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_node_killed_while_scheduled_pushes_fall_due(
    backend_urls: EmbeddedUrls, pool: Any
) -> None:
    """kill -9 of one of two nodes mid-burst: each scheduled push fires once and reaches every
    viewer once; every viewer's stream is gap- and duplicate-free (or says resync)."""
    world = await make_world(pool)
    env = child_env(
        LIVECOMMERCE_DATABASE_URL=backend_urls.database_url,
        LIVECOMMERCE_REDIS_URL=backend_urls.redis_url,
        LIVECOMMERCE_TIMER_LEASE_SECONDS="1",
    )
    nodes = [ServeProcess.start("serve", "--port", "0", "--no-migrate", env=env) for _ in range(2)]
    viewers: list[RecordingViewer] = []
    try:
        urls = await asyncio.gather(*(asyncio.to_thread(n.url) for n in nodes))
        ws = [u.replace("http://", "ws://") + "/ws" for u in urls]
        viewers = [
            RecordingViewer(ws[i % 2], world.room_id, world.viewer_token())
            for i in range(2 * VIEWERS_PER_NODE)
        ]
        for v in viewers:
            v.start()
        await asyncio.wait_for(asyncio.gather(*(v.welcomed.wait() for v in viewers)), 20)

        # Scheduled pushes due every 100 ms from t+3 s to t+6 s; the kill lands at t+4.5 s.
        t0 = datetime.now(UTC) + timedelta(seconds=3)
        sched = [
            await _schedule(urls[i % 2], world, i, t0 + timedelta(milliseconds=100 * i))
            for i in range(SCHEDULES)
        ]
        kill_at = time.monotonic() + (t0 - datetime.now(UTC)).total_seconds() + 1.5

        async def host_pushes() -> None:
            """Host pushes through the surviving node all along (one every 80 ms)."""
            for i in range(60):
                await _push(urls[0], world, i)
                await asyncio.sleep(0.08)

        pushing = asyncio.create_task(host_pushes())
        await asyncio.sleep(max(0.0, kill_at - time.monotonic()))
        assert await asyncio.to_thread(nodes[1].stop, signal.SIGKILL) == -signal.SIGKILL
        for v in viewers[1::2]:
            v.base = ws[0]  # the load balancer sends reconnects to the survivor
        await pushing

        deadline = time.monotonic() + 30
        while True:
            rows = await pool.fetch(
                "SELECT id, status, publish_seq FROM live_schedules WHERE id = ANY($1)", sched
            )
            if all(r["status"] in ("fired", "skipped") for r in rows):
                break
            assert time.monotonic() < deadline, [tuple(r) for r in rows]
            await asyncio.sleep(0.1)
        assert {r["status"] for r in rows} == {"fired"}
        assert len({r["publish_seq"] for r in rows}) == SCHEDULES  # one publish each
        lateness = await pool.fetch(
            "SELECT lateness_ms FROM live_schedules WHERE id = ANY($1) ORDER BY due_at", sched
        )
        print(f"\nscheduled push lateness (ms), by due time: {[r[0] for r in lateness]}")

        last = await _push(urls[0], world, 999)
        await wait_until(lambda: all(v.have == last for v in viewers), within=30)
        for i, v in enumerate(viewers):
            assert v.check_stream() == last
            fired = Counter(v.schedule_ids())
            assert all(n == 1 for n in fired.values()), (i, fired)  # never twice
            if v.resyncs() == 0:
                welcomes = [m for m in v.stream if m.get("type") == "welcome"]
                assert set(fired) == set(sched), (i, sorted(set(sched) - set(fired)), v.closes,
                                                  welcomes)  # fmt: skip
        moved = viewers[1::2]
        assert all(v.closes for v in moved)  # they did lose their node ...
        assert all(  # ... and resumed on the survivor without a resync
            m["resumed"] for v in moved for m in v.stream[1:] if m.get("type") == "welcome"
        )
    finally:
        for v in viewers:
            await v.stop()
        for n in nodes:
            n.stop(signal.SIGTERM)
    survivor = "\n".join(nodes[0].lines)
    assert "Traceback" not in survivor
