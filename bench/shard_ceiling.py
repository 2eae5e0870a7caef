"""How many room publishes (the Lua publish script: INCR, history ZADD + trim, SPUBLISH) one
cluster shard runs per second, and three shards together — the Redis-side ceiling behind the
1M-viewer projection in bench/README.md. One local 3-master Valkey cluster; 1 node subscriber
per room channel (a server process with viewers in every room).

    .venv/bin/python bench/shard_ceiling.py [--publishes 30000] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from fanout_common import log, save, table

from livecommerce import redis_keys as rk
from livecommerce.config import RedisConfig, RoomsConfig
from livecommerce.devtools.valkey_cluster import LocalCluster
from livecommerce.realtime.broker import Broker, PublishItem
from livecommerce.realtime.shards import ShardedRooms
from livecommerce.redis_clients import redis_client

BATCH = 200


async def rate(broker: Broker, rooms: list[int], total: int, clients: int) -> float:
    """Publishes/s over ``rooms`` from ``clients`` concurrent pipelined senders."""
    body = {"type": "comment", "text": "x" * 40, "user": "bench"}

    async def sender(k: int) -> None:
        for i in range(k, total // BATCH, clients):
            room = rooms[i % len(rooms)]
            await broker.publish_many([PublishItem(room, body)] * BATCH)

    t0 = time.perf_counter()
    await asyncio.gather(*(sender(k) for k in range(clients)))
    return total / (time.perf_counter() - t0)


async def measure(url: str, publishes: int) -> dict[str, Any]:
    redis = redis_client(RedisConfig(url=url))
    await redis.ping()  # the cluster client learns the topology on its first command
    broker = Broker(redis, RoomsConfig())
    got = 0

    async def on_frame(_room: int, _payload: bytes) -> None:
        nonlocal got
        got += 1

    async def no_catch_up(_rooms: Any) -> None:
        return None

    sub = ShardedRooms(redis, on_frame, no_catch_up, lambda _r: True)  # type: ignore[arg-type]
    runner = asyncio.create_task(sub.run())
    slots: dict[int, list[int]] = {}
    for room in range(1, 400):
        owner = redis.get_node_from_key(rk.room_seq(room))  # type: ignore[attr-defined]
        slots.setdefault(owner.port, []).append(room)
    one_shard = next(iter(slots.values()))[:10]
    all_shards = [r for rooms in slots.values() for r in rooms[:10]]
    for room in all_shards:
        await sub.ensure(room)
    await rate(broker, one_shard, 2000, 2)  # warm-up (scripts loaded, connections made)
    single = await rate(broker, one_shard, publishes, 4)
    spread = await rate(broker, all_shards, publishes, 6)
    await asyncio.sleep(0.5)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    await redis.aclose()
    return {"one_shard_per_s": round(single), "three_shards_per_s": round(spread),
            "frames_received": got}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--publishes", type=int, default=30000)
    ap.add_argument("--json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lc-bench-ceiling-") as tmp:
        cluster = LocalCluster(Path(tmp), masters=3, replicas=0)
        url = cluster.start()
        try:
            rep = asyncio.run(measure(url, args.publishes))
        finally:
            cluster.stop()
    md = table(
        ["publishes", "one shard (10 rooms) /s", "three shards (30 rooms) /s"],
        [[f"{args.publishes:,}", f"{rep['one_shard_per_s']:,}", f"{rep['three_shards_per_s']:,}"]],
    )
    print(md)
    log(f"frames received by the node subscriber: {rep['frames_received']:,}")
    save("shard-ceiling", {**rep, "publishes": args.publishes, "table_md": md}, args.json)


if __name__ == "__main__":
    main()
