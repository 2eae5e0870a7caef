"""/readyz on a real cluster: ready only while every slot range has a primary that answers — a
killed master makes it 503 naming that node until its replica is promoted, then it is 200
again. The same check on an idle client (no command of its own to notice the failover) shows
that the check itself refreshes the cached topology."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio.cluster import RedisCluster

from livecommerce.devtools.valkey_cluster import ClusterNodeProcess, LocalCluster
from livecommerce.ops import READY_TIMEOUT_SECONDS
from livecommerce.redis_clients import unanswered_primaries
from tests.support import AppServer, http

READY = {"status": "ready", "checks": {"postgres": "ok", "redis": "ok"}}


async def readyz(server: AppServer) -> tuple[int, Any, float]:
    """Status, body and how long the answer took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    status, body = await http("GET", server.url + "/readyz")
    return status, body, loop.time() - start


def flagged_failed(
    cluster: LocalCluster, observer: ClusterNodeProcess, node: ClusterNodeProcess
) -> bool:
    """Whether ``observer`` flags ``node`` (by its port) as failed (``fail``, not ``fail?``)."""
    assert observer.port is not None
    for line in cluster.cli(observer.port, "CLUSTER", "NODES").splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[1].split("@")[0].endswith(f":{node.port}"):
            return "fail" in parts[2].split(",")
    return False


async def test_readyz_needs_every_primary(
    valkey_cluster: LocalCluster, server: AppServer, redis: RedisCluster
) -> None:
    loop = asyncio.get_running_loop()
    status, body, _ = await readyz(server)
    assert (status, body) == (200, READY)  # the app's client has the topology cached now
    # ``redis`` (the app's kind of client, topology cached too) stays idle from here on.
    assert await unanswered_primaries(redis, READY_TIMEOUT_SECONDS) == {}

    victim = valkey_cluster.master_of_slot(0)
    replicas = valkey_cluster.replicas_of(victim)
    assert replicas
    # Its replicas wait to be told to take over: the check runs before a failover for sure.
    for replica in replicas:
        assert replica.port is not None
        valkey_cluster.cli(replica.port, "CONFIG", "SET", "cluster-replica-no-failover", "yes")
    await asyncio.to_thread(victim.kill)
    down = f"error: ConnectionError (127.0.0.1:{victim.port})"
    try:
        status, body, took = await readyz(server)
        assert status == 503, body
        assert body["status"] == "unavailable"
        assert body["checks"] == {"postgres": "ok", "redis": down}
        assert took < READY_TIMEOUT_SECONDS + 1
        # Once the other nodes have flagged it failed, the cluster still lists it as the slots'
        # primary (the client's topology refresh sees it): still 503.
        flagged = loop.time() + 15
        while not await asyncio.to_thread(flagged_failed, valkey_cluster, replicas[0], victim):
            assert loop.time() < flagged, "the victim was never flagged failed"
            await asyncio.sleep(0.1)
        status, body, _ = await readyz(server)
        assert (status, body["checks"]["redis"]) == (503, down)
        assert await unanswered_primaries(redis, READY_TIMEOUT_SECONDS) == {
            f"127.0.0.1:{victim.port}": "ConnectionError"
        }

        # The replica may take over now: ready again within a bounded time once it has.
        for replica in replicas:
            assert replica.port is not None
            valkey_cluster.cli(replica.port, "CONFIG", "SET", "cluster-replica-no-failover", "no")
        promoted = await asyncio.to_thread(valkey_cluster.wait_slot_served, 0, 30.0)
        assert promoted.port != victim.port
        deadline = loop.time() + 30
        while (answer := await readyz(server))[0] != 200:
            assert answer[0] == 503, answer
            assert loop.time() < deadline, f"still not ready after the failover: {answer}"
            await asyncio.sleep(0.2)
        assert answer[1] == READY
        while (failed := await unanswered_primaries(redis, READY_TIMEOUT_SECONDS)) != {}:
            assert loop.time() < deadline, f"the idle client never saw the failover: {failed}"
            await asyncio.sleep(0.2)
    finally:
        for replica in replicas:
            if replica.port is not None:
                valkey_cluster.cli(
                    replica.port, "CONFIG", "SET", "cluster-replica-no-failover", "no"
                )
        # Back as a replica of the promoted one, for the tests after (started from this
        # thread: see test_failover).
        victim.start()
        await asyncio.to_thread(valkey_cluster.wait_healthy, 60.0)
