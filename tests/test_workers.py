"""`serve --workers N`: N processes on one port, each a full node, stopped together."""

from __future__ import annotations

import signal
from typing import Any

import aiohttp
import pytest

from livecommerce.embedded import EmbeddedUrls
from tests.support import ServeProcess, child_env, http


@pytest.mark.slow
async def test_two_workers_share_the_port_and_stop_cleanly(
    backend_urls: EmbeddedUrls, pool: Any
) -> None:
    """Both workers answer on the same port; SIGTERM stops the supervisor and both, exit 0."""
    env = child_env(
        LIVECOMMERCE_DATABASE_URL=backend_urls.database_url,
        LIVECOMMERCE_REDIS_URL=backend_urls.redis_url,
        LIVECOMMERCE_SERVER_WORKERS="2",  # from config: the children must not fork again
    )
    sup = ServeProcess.start("serve", "--port", "0", env=env)
    try:
        line = sup.wait_for("2 workers listening on http://", timeout=90)
        url = line.split("listening on ", 1)[1].strip()
        nodes = set()
        for _ in range(60):
            async with aiohttp.ClientSession() as session, session.get(url + "/healthz") as resp:
                nodes.add((await resp.json())["node"])
            if len(nodes) == 2:
                break
        assert len(nodes) == 2, "the kernel should spread new connections over both workers"
        assert (await http("GET", url + "/readyz"))[0] == 200
        pids = [c for c in sup.lines if "listening on http://" in c and c.startswith("[worker")]
        assert len(pids) == 2
    finally:
        code = sup.stop(signal.SIGTERM)
    assert code == 0, "\n".join(sup.lines)
    out = "\n".join(sup.lines)
    assert "Traceback" not in out
    assert out.count("shutting down") == 2
