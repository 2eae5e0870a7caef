"""A real local Valkey Cluster (3 masters, 1 replica each) for the whole run, and the usual
fixtures (``settings``, ``redis``, ``server``, ``world``, ``social``) pointed at it.

Tests imported here from tests/realtime, tests/timer and tests/social run unchanged against the
cluster: they resolve ``backend_urls``/``redis`` from this conftest.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from livecommerce.config import RedisConfig, Settings
from livecommerce.devtools.valkey_cluster import LocalCluster
from livecommerce.embedded import EmbeddedUrls
from livecommerce.redis_clients import redis_client
from tests.commerce.conftest import shop  # noqa: F401 (fixture)
from tests.realtime.conftest import world  # noqa: F401 (fixture)
from tests.social.conftest import social  # noqa: F401 (fixture)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/cluster is marked ``cluster`` (``-m 'not cluster'`` skips it)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def valkey_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Three Valkey masters with one replica each on loopback (private ports), torn down after."""
    cluster = LocalCluster(tmp_path_factory.mktemp("valkey-cluster"), masters=3, replicas=1)
    with cluster:
        yield cluster


@pytest.fixture(scope="session")
def backend_urls(backend_urls: EmbeddedUrls, valkey_cluster: LocalCluster) -> EmbeddedUrls:
    """The run's PostgreSQL and the cluster: every fixture built on ``backend_urls``
    (``settings``, ``server``, child server processes) uses the cluster."""
    return EmbeddedUrls(backend_urls.database_url, valkey_cluster.url())


@pytest.fixture
async def redis(settings: Settings, valkey_cluster: LocalCluster) -> AsyncIterator[Redis]:
    """The app's cluster client on the test cluster (healthy), every master flushed first."""
    await asyncio.to_thread(valkey_cluster.wait_healthy)
    client = redis_client(RedisConfig(url=settings.redis.url))
    assert isinstance(client, RedisCluster)
    await client.flushdb(target_nodes=RedisCluster.PRIMARIES)
    yield client
    await client.aclose()
