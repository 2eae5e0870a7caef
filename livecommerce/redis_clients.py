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
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from livecommerce.config import RedisConfig

REDIS_HEALTH_CHECK_SECONDS = 1.0
REDIS_RETRIES = 3
SUBSCRIPTION_MAX_CONNECTIONS = 4


def redis_client(cfg: RedisConfig) -> Redis:
    """The app's Redis client. Connects lazily: a Redis that is down at start shows in /readyz
    instead of a crash loop. A blocking pool: past ``max_connections`` a command waits for a
    free connection (up to ``pool_timeout_seconds``) rather than failing with "Too many
    connections" — under a burst of joins that closed viewers with 1012. A command unanswered for
    ``command_timeout_seconds`` raises redis-py's ``TimeoutError`` (retried, then 503): a hung
    Redis does not hang requests. Stale connections
    after a Redis restart are health-checked and retried (module docstring): requests succeed
    again as soon as Redis answers."""
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


def subscription_client(redis: Redis) -> Redis:
    """A client for long-lived subscriptions to the same server as ``redis`` (same address,
    credentials and database), without retries: a broken subscription raises. No read timeout
    (a quiet channel is not a fault: ``get_message(timeout=None)`` waits for the next message);
    the connect timeout stays. Close it with ``aclose()``."""
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
