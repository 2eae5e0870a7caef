"""Two real server processes sharing one Redis: fan-out across nodes, counts, and a node going away."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest

from livecommerce.embedded import EmbeddedUrls
from tests.realtime.conftest import World, make_world
from tests.realtime.viewer import TestViewer, assert_contiguous, wait_until
from tests.support import ServeProcess, child_env, http


async def push(base: str, world: World, i: int) -> int:
    status, body = await http(
        "POST", f"{base}/api/rooms/{world.room_id}/push",
        json={"goods_id": world.goods_ids[i % 3]}, headers=world.host_headers(),
    )  # fmt: skip
    assert status == 201, body
    return int(body["seq"])  # type: ignore[index]


@pytest.mark.slow
async def test_two_nodes_exactly_once_in_order_and_failover(
    backend_urls: EmbeddedUrls, pool: Any, redis: Any
) -> None:
    """200 viewers on two processes get every push once, in order; counts are cluster-wide;
    stopping one process moves its viewers to the other with nothing missed or doubled."""
    world = await make_world(pool)
    env = child_env(
        LIVECOMMERCE_DATABASE_URL=backend_urls.database_url,
        LIVECOMMERCE_REDIS_URL=backend_urls.redis_url,
        LIVECOMMERCE_SERVER_SHUTDOWN_GRACE_SECONDS="3",
    )
    nodes = [ServeProcess.start("serve", "--port", "0", "--no-migrate", env=env) for _ in range(2)]
    try:
        urls = await asyncio.gather(*(asyncio.to_thread(n.url) for n in nodes))
        ws_urls = [u.replace("http://", "ws://") + "/ws" for u in urls]
        viewers = [
            TestViewer(ws_urls[i % 2], world.room_id, world.viewer_token()) for i in range(200)
        ]
        for batch in range(0, 200, 50):
            await asyncio.gather(*(v.connect() for v in viewers[batch : batch + 50]))

        pushed = [await push(urls[0], world, i) for i in range(10)]
        await wait_until(
            lambda: all(len(v.of_type("goods_push")) == 10 for v in viewers), within=30
        )
        for v in viewers:
            assert [f["seq"] for f in v.of_type("goods_push")] == pushed
            assert v.seqs() == sorted(set(v.seqs()))
        # The cluster-wide count reaches viewers on both nodes.
        await wait_until(
            lambda: all(
                any(f["count"] == 200 for f in v.of_type("viewer_count"))
                for v in (viewers[0], viewers[1])
            ),
            within=15,
        )

        # Node 1 goes away: its viewers are told to reconnect (1012) and resume on node 0.
        leaving = viewers[1::2]
        stopper = asyncio.create_task(asyncio.to_thread(nodes[1].stop, signal.SIGTERM))
        await wait_until(lambda: all(v.closed.is_set() for v in leaving), within=20)
        assert all(v.ws is not None and v.ws.close_code == 1012 for v in leaving)
        during = asyncio.gather(*(push(urls[0], world, i) for i in range(5)))
        for batch in range(0, len(leaving), 25):
            results = await asyncio.gather(
                *(v.connect(ws_urls[0], resume=True) for v in leaving[batch : batch + 25])
            )
            assert all(r["type"] == "welcome" and r["resumed"] for r in results)
        await during
        assert await stopper == 0
        last = await push(urls[0], world, 99)
        await wait_until(lambda: all(v.last_seq >= last for v in viewers), within=30)
        for v in viewers:
            start = v.welcomes[0]["seq"]
            assert_contiguous(v, start + 1, v.last_seq)
            assert len(v.of_type("goods_push")) == 16
        await wait_until(lambda: viewers[0].of_type("viewer_count")[-1]["count"] == 200, within=15)
        for v in viewers:
            await v.close()
    finally:
        for n in nodes:
            n.stop(signal.SIGTERM)
    out = "\n".join(line for n in nodes for line in n.lines)
    assert "Traceback" not in out
