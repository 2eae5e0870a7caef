"""The Redis clients: the app's pooled client (retried, health-checked) and the ones for
long-lived subscriptions (never retried behind our back).

After a Redis restart every pooled connection is dead. A connection idle for longer than
``REDIS_HEALTH_CHECK_SECONDS`` is PINGed before it is handed out (and reconnected if that
fails), so a command is rarely sent on a dead connection; one that still fails on a connection
error is retried on a new connection (``REDIS_RETRIES`` times, jittered backoff 50 ms .. 500 ms).
Retrying a command whose reply was lost may run it twice; the writes that must not happen twice
(timer publishes, flash-sale takes, payments) carry idempotency keys. README "Reliability".

Subscriptions must not be retried that way: redis-py would reconnect and resubscribe a broken
subscription silently, and whatever was published meanwhile would be lost without anyone
knowing. Their clients have no retry, so the break surfaces and the subscriber catches up
(``realtime/node.py``) or rebuilds (``timer/dispatcher.py``).

Redis Cluster / Valkey Cluster: a URL ``redis+cluster://[:password@]host:port[,host:port...]``
(``rediss+cluster://`` for TLS) names seed nodes of a cluster; the app client is then redis-py's
cluster client (``RedisCluster``), which routes each command by its keys' hash slot and follows
MOVED/ASK and failovers. It is typed as ``Redis`` throughout the app: every command, script and
non-transactional pipeline the app uses behaves the same on both, each multi-key one touching
one hash tag (``tests/cluster/test_scripts.py`` runs each against a real cluster). What does
differ, pub/sub, lives in ``realtime/shards.py`` (rooms on sharded pub/sub) and in
:func:`subscription_client` (classic channels from any cluster node); so does readiness
(:func:`unanswered_primaries`: every slot range's primary, not one node).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.crc import REDIS_CLUSTER_HASH_SLOTS
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from livecommerce.config import CLUSTER_SCHEMES, RedisConfig

REDIS_HEALTH_CHECK_SECONDS = 1.0
REDIS_RETRIES = 3
SUBSCRIPTION_MAX_CONNECTIONS = 4


def is_cluster_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in CLUSTER_SCHEMES


def is_cluster(redis: Redis) -> bool:
    """Whether ``redis`` (as made by :func:`redis_client`) is a cluster client."""
    return isinstance(cast("object", redis), RedisCluster)


def cluster_options(url: str) -> dict[str, Any]:
    """``redis+cluster://[user:password@]h1:p1,h2:p2`` -> RedisCluster keyword arguments.

    Raises:
        ValueError: no seed node, or a seed without a port.
    """
    parts = urlsplit(url)
    auth, _, hosts = parts.netloc.rpartition("@")
    user, _, password = auth.partition(":")
    seeds = []
    for hostport in filter(None, hosts.split(",")):
        host, sep, port = hostport.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"cluster seed {hostport!r} needs host:port")
        seeds.append(ClusterNode(host.strip("[]"), int(port)))
    if not seeds:
        raise ValueError("a redis+cluster:// URL needs at least one host:port")
    return {
        "startup_nodes": seeds,
        "username": unquote(user) or None,
        "password": unquote(password) or None,
        "ssl": parts.scheme.lower().startswith("rediss"),
    }


def redis_client(cfg: RedisConfig) -> Redis:
    """The app's Redis client. Connects lazily: a Redis that is down at start shows in /readyz
    instead of a crash loop. A blocking pool: past ``max_connections`` a command waits for a
    free connection (up to ``pool_timeout_seconds``) rather than failing with "Too many
    connections" — under a burst of joins that closed viewers with 1012. A command unanswered for
    ``command_timeout_seconds`` raises redis-py's ``TimeoutError`` (retried, then 503): a hung
    Redis does not hang requests. Stale connections
    after a Redis restart are health-checked and retried (module docstring): requests succeed
    again as soon as Redis answers. A cluster URL gives the cluster client (module docstring),
    ``max_connections`` per cluster node; after a failover it finds the new master by itself."""
    if is_cluster_url(cfg.url):
        return cast(
            "Redis",
            RedisCluster(
                **cluster_options(cfg.url),
                max_connections=cfg.max_connections,
                require_full_coverage=False,
                retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), REDIS_RETRIES),
                retry_on_error=[RedisConnectionError, RedisTimeoutError],
                health_check_interval=REDIS_HEALTH_CHECK_SECONDS,
                socket_timeout=cfg.command_timeout_seconds,
                socket_connect_timeout=cfg.command_timeout_seconds,
            ),
        )
    return Redis.from_pool(
        BlockingConnectionPool.from_url(
            cfg.url,
            max_connections=cfg.max_connections,
            timeout=cfg.pool_timeout_seconds,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), REDIS_RETRIES),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            health_check_interval=REDIS_HEALTH_CHECK_SECONDS,
            socket_timeout=cfg.command_timeout_seconds,
            socket_connect_timeout=cfg.command_timeout_seconds,
        )
    )


async def unanswered_primaries(cluster: RedisCluster, within: float) -> dict[str, str]:
    """What keeps some slot of ``cluster`` from having a reachable primary, within ``within``
    seconds: ``{"host:port": exception class}`` per primary that does not answer PING, plus
    ``{"N slots": "SlotNotCoveredError"}`` if the topology leaves slots without a primary; empty
    when every slot range has a primary that answers (``/readyz``).

    Pings the primary of every slot range of the client's current topology, concurrently, on
    the client's own node pools (no retry). redis-py keeps its topology until a command fails,
    so a master that died and was replaced since would read as down forever: when a primary
    does not answer, the topology is refreshed (``CLUSTER SLOTS`` from the other nodes, the
    failed one asked last) and the primaries of the new one are pinged — the promoted replica
    is then found as soon as the cluster has promoted it. A master down and not yet failed
    over is still listed by the cluster, and fails again. First round: at most half the time;
    if the refresh does not finish in time, the first round's failures are the answer.
    A client that has not connected yet (it connects lazily) is initialized first; that
    failing raises (e.g. ``RedisClusterException``: no seed answers).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    if not cluster.get_nodes():
        await asyncio.wait_for(cluster.initialize(), within)
    failed = await _ping_primaries(cluster, (deadline - loop.time()) / 2)
    if not failed:
        return failed
    dead = next((name for name in failed if cluster.get_node(node_name=name)), None)
    try:
        await asyncio.wait_for(
            cluster.nodes_manager.initialize(last_failed_node_name=dead),
            max(deadline - loop.time(), 0.0),
        )
    except Exception:  # refresh unavailable or too slow: the first round stands
        return failed
    return await _ping_primaries(cluster, max(deadline - loop.time(), 0.0))


async def _ping_primaries(cluster: RedisCluster, within: float) -> dict[str, str]:
    """One round of :func:`unanswered_primaries` on the client's current slot map."""
    slots = cluster.nodes_manager.slots_cache
    ranges = {id(nodes): nodes for nodes in slots.values() if nodes}  # one list per slot range
    primaries = {nodes[0].name: nodes[0] for nodes in ranges.values()}

    async def ping(node: ClusterNode) -> None:
        # The node's own pool rather than cluster.ping(target_nodes=...), which on a failure
        # also marks the whole client for re-initialization: this check refreshes once itself.
        await asyncio.wait_for(node.execute_command("PING"), within)

    names = sorted(primaries)
    results = await asyncio.gather(
        *(ping(primaries[name]) for name in names), return_exceptions=True
    )
    failed = {
        name: type(result).__name__
        for name, result in zip(names, results, strict=True)
        if isinstance(result, BaseException)
    }
    if len(slots) < REDIS_CLUSTER_HASH_SLOTS:
        failed[f"{REDIS_CLUSTER_HASH_SLOTS - len(slots)} slots"] = "SlotNotCoveredError"
    return failed


def subscription_client(redis: Redis) -> Redis:
    """A client for long-lived subscriptions to the same server as ``redis`` (same address,
    credentials and database), without retries: a broken subscription raises. No read timeout
    (a quiet channel is not a fault: ``get_message(timeout=None)`` waits for the next message);
    the connect timeout stays. Close it with ``aclose()``.

    On a cluster: a client for classic (not sharded) channels, which the cluster broadcasts to
    every node; each new connection goes to the next known node, so a resubscription after a
    node died lands on a live one."""
    if is_cluster(redis):
        return Redis.from_pool(_AnyNodePool(cast("RedisCluster", redis)))
    base = redis.connection_pool
    kwargs = {
        k: v
        for k, v in base.connection_kwargs.items()
        if k not in ("retry", "retry_on_error", "health_check_interval", "socket_timeout")
    }
    pool = ConnectionPool(
        connection_class=base.connection_class,
        max_connections=SUBSCRIPTION_MAX_CONNECTIONS,
        **kwargs,
    )
    return Redis.from_pool(pool)


def node_connection_kwargs(cluster: RedisCluster) -> dict[str, Any]:
    """Connection settings (credentials, TLS, timeouts) of the cluster's nodes, without the
    retry and health-check settings, without a read timeout (subscriptions wait for the next
    message however long a channel is quiet) and without host/port."""
    nodes = cluster.get_nodes() or cluster.nodes_manager.startup_nodes.values()
    kwargs = dict(next(iter(nodes)).connection_kwargs)
    for k in ("retry", "retry_on_error", "health_check_interval", "socket_timeout", "host", "port"):
        kwargs.pop(k, None)
    return kwargs


class _AnyNodePool(ConnectionPool):
    """Connections to the cluster's nodes in turn (the current topology, else the seeds)."""

    def __init__(self, cluster: RedisCluster) -> None:
        kwargs = node_connection_kwargs(cluster)
        conn_class = kwargs.pop("connection_class", Connection)
        super().__init__(
            connection_class=conn_class, max_connections=SUBSCRIPTION_MAX_CONNECTIONS, **kwargs
        )
        self.cluster = cluster
        self._turn = itertools.count()

    def make_connection(self) -> Connection:
        nodes = self.cluster.get_nodes() or list(self.cluster.nodes_manager.startup_nodes.values())
        node = nodes[next(self._turn) % len(nodes)]
        conn = cast("Connection", super().make_connection())  # type: ignore[no-untyped-call]
        conn.host, conn.port = node.host, int(node.port)
        return conn
