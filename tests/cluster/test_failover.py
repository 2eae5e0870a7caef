"""A master dies mid-stream on the real cluster: after its replica takes over, viewers on two
nodes keep receiving — an in-band resync for the new epoch, then every later frame once, in
order — and every scheduled push due around the failover fires exactly once (the dead master
held the room and one of the two timer wheels)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import orjson
import websockets
from redis.cluster import key_slot

from livecommerce import redis_keys as rk
from livecommerce.config import Settings
from livecommerce.devtools.valkey_cluster import LocalCluster
from tests.realtime.conftest import World
from tests.realtime.viewer import TestViewer, wait_until
from tests.support import http
from tests.timer.test_timer import iso, schedule, soon, statuses, with_timer


class LoggingViewer(TestViewer):
    """Also keeps every message in arrival order (frames and resyncs interleaved)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.log: list[dict[str, Any]] = []

    async def _read(self, ws: Any) -> None:
        try:
            async for raw in ws:
                msg = orjson.loads(raw)
                self.log.append(msg)
                if "seq" in msg and msg.get("type") not in ("welcome", "resync"):
                    self.frames.append(msg)
                else:
                    self.others.append(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed.set()

    def check_streams(self) -> None:
        """Within each epoch (welcome or resync at seq S, then frames): S+1, S+2, ... each once."""
        last = int(self.welcomes[0]["seq"])
        for msg in self.log:
            if msg.get("type") == "resync":
                last = int(msg["seq"])
            elif "seq" in msg:
                assert int(msg["seq"]) == last + 1, (last, msg)
                last += 1


async def push(base: str, world: World, i: int, within: float = 30.0) -> int:
    """A host push, retried while the room's shard is failing over (503)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        status, body = await http(
            "POST", f"{base}/api/rooms/{world.room_id}/push",
            json={"goods_id": world.goods_ids[i % 3]}, headers=world.host_headers(),
        )  # fmt: skip
        if status == 201:
            return int(body["seq"])  # type: ignore[index]
        assert status == 503, body
        assert asyncio.get_running_loop().time() < deadline, "room shard never came back"
        await asyncio.sleep(0.2)


async def test_master_killed_mid_stream(
    valkey_cluster: LocalCluster,
    make_server: Any,
    settings: Settings,
    world: World,
    pool: Any,
    redis: Any,
) -> None:
    # Two timer wheels: one of them is on the master that dies (asserted below).
    sharded = with_timer(settings, wheel_shards=2)
    servers = [await make_server(sharded), await make_server(sharded)]
    viewers = [
        LoggingViewer(servers[i % 2].ws_url(), world.room_id, world.viewer_token())
        for i in range(20)
    ]
    await asyncio.gather(*(v.connect() for v in viewers))
    for i in range(5):
        await push(servers[0].url, world, i)
    await wait_until(lambda: all(len(v.of_type("goods_push")) == 5 for v in viewers), within=20)

    # Scheduled pushes due from now until well after the failover.
    base = soon(1500)
    for i in range(12):
        status, body = await schedule(
            servers[1], world, f"fo-{i}", at=iso(base + timedelta(milliseconds=400 * i))
        )
        assert status == 201, body

    slot = key_slot(rk.room_seq(world.room_id).encode())
    victim = valkey_cluster.master_of_slot(slot)
    victim_port = victim.port
    wheel_owners = {
        valkey_cluster.master_of_slot(key_slot(rk.timer_keys(k)[0].encode())).port for k in (0, 1)
    }
    assert victim_port in wheel_owners  # the room's master holds a timer wheel too
    await asyncio.to_thread(victim.kill)
    try:
        promoted = await asyncio.to_thread(valkey_cluster.wait_slot_served, slot, 30.0)
        assert promoted.port != victim_port
        after = [await push(servers[i % 2].url, world, i) for i in range(5)]
        # Every viewer is resynced into the new epoch (another run_id serves the room) ...
        await wait_until(
            lambda: all(any(m.get("type") == "resync" for m in v.log) for v in viewers), within=30
        )
        # ... and live frames continue after it.
        after.append(await push(servers[0].url, world, 5))
        await wait_until(
            lambda: all(
                any(f["seq"] == after[-1] for f in v.of_type("goods_push")) for v in viewers
            ),
            within=30,
        )
        for v in viewers:
            assert not v.closed.is_set()
            v.check_streams()
            last_resync = max(i for i, m in enumerate(v.log) if m.get("type") == "resync")
            # A push at or before the resync's seq is in the state the resync carries; each
            # later one arrives once, as a frame.
            resync_seq = int(v.log[last_resync]["seq"])
            got = [m["seq"] for m in v.log[last_resync:] if m.get("type") == "goods_push"]
            assert all(got.count(s) == 1 for s in after if s > resync_seq), (got, after)
            assert got.count(after[-1]) == 1, (got, after)

        async def all_fired() -> bool:
            return (await statuses(pool, world.room_id))["fired"] == 12

        deadline = asyncio.get_running_loop().time() + 40
        while not await all_fired():
            assert asyncio.get_running_loop().time() < deadline, await statuses(pool, world.room_id)
            await asyncio.sleep(0.1)
        seqs = await pool.fetch(
            "SELECT publish_seq FROM live_schedules WHERE room_id = $1", world.room_id
        )
        assert len({r["publish_seq"] for r in seqs}) == 12
        # Each viewer saw each scheduled push at most once (a push published just before the
        # master died may be in the old epoch only).
        for v in viewers:
            ids = [f["schedule_id"] for f in v.of_type("goods_push") if "schedule_id" in f]
            assert len(ids) == len(set(ids)), ids
    finally:
        for v in viewers:
            await v.close()
        # The old master comes back as a replica of the promoted one (for the tests after).
        # Started from this thread: a child started from a worker thread gets its parent-death
        # signal when that thread ends (embedded.processes.pdeathsig).
        victim.start()
        await asyncio.to_thread(valkey_cluster.wait_healthy, 60.0)
