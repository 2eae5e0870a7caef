"""A cluster ``redis.url``: accepted with seed nodes, refused without, and it gives the cluster
client (no cluster needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster

from livecommerce.config import ConfigError, RedisConfig, load_settings
from livecommerce.redis_clients import cluster_options, is_cluster, redis_client

DB = "postgresql://u:p@db.internal/live"


def test_cluster_url_is_accepted_and_parsed(tmp_path: Path) -> None:
    url = "redis+cluster://:s%40cret@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002"
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    s = load_settings(cfg, env={"LIVECOMMERCE_DATABASE_URL": DB, "LIVECOMMERCE_REDIS_URL": url})
    assert s.redis.url == url
    opts = cluster_options(url)
    assert [(n.host, n.port) for n in opts["startup_nodes"]] == [
        ("10.0.0.1", 7000), ("10.0.0.2", 7001), ("::1", 7002),
    ]  # fmt: skip
    assert opts["password"] == "s@cret"
    assert opts["ssl"] is False
    assert cluster_options("rediss+cluster://h:1")["ssl"] is True
    client = redis_client(RedisConfig(url=url))
    assert isinstance(client, RedisCluster)
    assert is_cluster(client)
    assert not is_cluster(redis_client(RedisConfig(url="redis://h:1/0")))


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://",
        "redis+cluster://:pw@h1",
        "redis+cluster://h1:x",
        "redis+cluster://h:1,:2",
    ],
)
def test_cluster_url_without_seeds_is_refused(tmp_path: Path, url: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    with pytest.raises(ConfigError, match=r"redis\.url: cluster seed"):
        load_settings(cfg, env={"LIVECOMMERCE_DATABASE_URL": DB, "LIVECOMMERCE_REDIS_URL": url})
