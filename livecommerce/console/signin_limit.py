"""Failed sign-ins are counted in Redis per host name and per client address, in a fixed
window; past the limit, sign-in answers 429 without checking the password.

Keys: ``lc:{signin}:name:<name>`` and ``lc:{signin}:addr:<address>``, each expiring with its
window. One hash tag: the check reads both with one MGET, which a Redis Cluster allows only
within one slot (sign-ins are few; one slot carries them).
"""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis

from livecommerce.errors import RateLimited

WINDOW_SECONDS = 15 * 60
MAX_PER_NAME = 5
MAX_PER_ADDRESS = 20


def _keys(name: str, address: str) -> tuple[str, str]:
    digest = hashlib.sha256(name.encode()).hexdigest()[:32]  # bounded key whatever the name
    return f"lc:{{signin}}:name:{digest}", f"lc:{{signin}}:addr:{address}"


async def check(redis: Redis, name: str, address: str) -> None:
    """Raise RateLimited (429, ``too_many_sign_ins``) when either counter is at its limit."""
    by_name, by_addr = _keys(name, address)
    n_name, n_addr = await redis.mget(by_name, by_addr)
    if int(n_name or 0) >= MAX_PER_NAME or int(n_addr or 0) >= MAX_PER_ADDRESS:
        ttl = max(await redis.ttl(by_name), await redis.ttl(by_addr), 1)
        raise RateLimited(
            f"too many failed sign-ins; try again in {ttl} s", code="too_many_sign_ins"
        )


async def failed(redis: Redis, name: str, address: str) -> None:
    """Count one failed sign-in for the name and the address."""
    by_name, by_addr = _keys(name, address)
    async with redis.pipeline(transaction=True) as pipe:
        for key in (by_name, by_addr):
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS, nx=True)
        await pipe.execute()


async def succeeded(redis: Redis, name: str) -> None:
    """Forget the name's failures after a good sign-in."""
    await redis.delete(_keys(name, "")[0])
