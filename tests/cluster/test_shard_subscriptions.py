"""Sharded room subscriptions on the real cluster: subscribe on the first local viewer,
unsubscribe a while after the last one left (a viewer resuming then gets what was published
meanwhile), and a room whose slot moves to another master is followed there with nothing
missed."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.cluster import key_slot

from livecommerce import keys
from livecommerce import redis_keys as rk
from livecommerce.devtools.valkey_cluster import ClusterNodeProcess, LocalCluster
from tests.cluster.test_failover import LoggingViewer, push
from tests.realtime.conftest import World
from tests.realtime.viewer import TestViewer, wait_until
from tests.support import AppServer


def subscribers(cluster: LocalCluster, room_id: int) -> int:
    """SSUBSCRIBEd connections on the room's channel, asked of the slot's owner."""
    owner = cluster.master_of_slot(key_slot(rk.room_shard_channel(room_id).encode()))
    assert owner.port is not None
    out = cluster.cli(owner.port, "PUBSUB", "SHARDNUMSUB", rk.room_shard_channel(room_id))
    return int(out.split()[-1])


async def test_subscribed_while_viewers_are_here(
    server: AppServer, world: World, valkey_cluster: LocalCluster
) -> None:
    shards = server.app[keys.NODE].shards
    assert shards is not None
    shards.linger = 0.3
    assert subscribers(valkey_cluster, world.room_id) == 0
    v = TestViewer(server.ws_url(), world.room_id, world.viewer_token())
    start = (await v.connect())["seq"]
    assert world.room_id in shards.subscribed_rooms
    assert subscribers(valkey_cluster, world.room_id) == 1
    first = await push(server.url, world, 0)
    await wait_until(lambda: v.last_seq >= first, within=10)
    await v.close()
    # The room is forgotten after the presence tick reported 0, then lingers 0.3 s.
    await wait_until(lambda: world.room_id not in shards.subscribed_rooms, within=15)
    await wait_until(lambda: subscribers(valkey_cluster, world.room_id) == 0, within=5)

    # Published while no node listens to the room; the viewer resumes into a fresh subscription.
    missed = [await push(server.url, world, i) for i in (1, 2)]
    welcome = await v.connect(resume=True)
    assert welcome["resumed"]
    assert subscribers(valkey_cluster, world.room_id) == 1
    live = await push(server.url, world, 3)
    await wait_until(lambda: v.last_seq >= live, within=10)
    pushes = [f["seq"] for f in v.of_type("goods_push")]
    assert pushes == [first, *missed, live]
    assert v.seqs() == list(range(start + 1, live + 1))  # every frame once, in order
    await v.close()


def move_slot(cluster: LocalCluster, slot: int, src: ClusterNodeProcess,
              dst: ClusterNodeProcess) -> None:  # fmt: skip
    """Migrate ``slot`` with its keys from ``src`` to ``dst`` (CLUSTER SETSLOT + MIGRATE)."""
    assert src.port is not None
    assert dst.port is not None
    src_id = cluster.cli(src.port, "CLUSTER", "MYID").strip()
    dst_id = cluster.cli(dst.port, "CLUSTER", "MYID").strip()
    cluster.cli(dst.port, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", src_id)
    cluster.cli(src.port, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", dst_id)
    while True:
        names = cluster.cli(src.port, "CLUSTER", "GETKEYSINSLOT", str(slot), "100").split()
        if not names:
            break
        cluster.cli(src.port, "MIGRATE", "127.0.0.1", str(dst.port), "", "0", "5000",
                    "AUTH", cluster.password, "KEYS", *names)  # fmt: skip
    for node in cluster.nodes:
        if node.port is not None and node.proc is not None and node.proc.poll() is None:
            cluster.cli(node.port, "CLUSTER", "SETSLOT", str(slot), "NODE", dst_id)


async def test_slot_moved_to_another_master(
    make_server: Any, world: World, valkey_cluster: LocalCluster
) -> None:
    server = await make_server()
    viewers = [
        LoggingViewer(server.ws_url(), world.room_id, world.viewer_token()) for _ in range(5)
    ]
    await asyncio.gather(*(v.connect() for v in viewers))
    for i in range(3):
        await push(server.url, world, i)
    slot = key_slot(rk.room_seq(world.room_id).encode())
    src = valkey_cluster.master_of_slot(slot)
    dst = next(
        n for n in valkey_cluster.nodes
        if n is not src and n.port is not None and n.proc is not None
        and "role:master" in valkey_cluster.cli(n.port, "INFO", "replication")
    )  # fmt: skip
    await asyncio.to_thread(move_slot, valkey_cluster, slot, src, dst)
    assert valkey_cluster.master_of_slot(slot) is dst
    # The node follows the room to its new master (the server's sunsubscribe) and catches up.
    await wait_until(lambda: subscribers(valkey_cluster, world.room_id) == 1, within=15)
    after = [await push(server.url, world, i) for i in range(3)]
    await wait_until(lambda: all(v.last_seq >= after[-1] for v in viewers), within=15)
    for v in viewers:
        assert not v.closed.is_set()
        v.check_streams()
        got = [f["seq"] for f in v.of_type("goods_push")]
        assert got.count(after[-1]) == 1, got
        await v.close()
