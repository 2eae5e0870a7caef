"""The Redis side of scheduled pushes: add, remove, claim with a lease, acknowledge."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from livecommerce import redis_keys as rk

_LUA = Path(__file__).resolve().parent.parent / "lua"
_CLAIM = (_LUA / "timer_claim.lua").read_text()
_RESTORE = (_LUA / "timer_restore.lua").read_text()


def member(schedule_id: int, version: int) -> str:
    return f"{schedule_id}:{version}"


def parse_member(raw: bytes | str) -> tuple[int, int] | None:
    text = raw.decode() if isinstance(raw, bytes) else raw
    sid, _, version = text.partition(":")
    if not sid.isdigit() or not version.isdigit():
        return None
    return int(sid), int(version)


@dataclass(frozen=True, slots=True)
class Claim:
    now_ms: float  # Redis time of the claim, to the microsecond
    members: list[str]
    next_due_ms: int | None
    next_lease_ms: int | None
    built: bool

    def next_claim_ms(self, lookahead_ms: int) -> float | None:
        """When the next claim has something to take: a due time minus the look-ahead, or a lease
        expiry."""
        times = [t for t in (self.next_lease_ms,) if t is not None]
        if self.next_due_ms is not None:
            times.append(self.next_due_ms - lookahead_ms)
        return min(times) if times else None


class Wheel:
    def __init__(self, redis: Redis, *, lease_ms: int, batch: int, lookahead_ms: int = 0) -> None:
        self.redis = redis
        self.lease_ms = lease_ms
        self.batch = batch
        self.lookahead_ms = lookahead_ms
        self._claim = redis.register_script(_CLAIM)
        self._restore = redis.register_script(_RESTORE)

    async def add(self, entries: Iterable[tuple[str, int]]) -> None:
        """Put members on the wheel at their due times (ms) and wake the dispatchers."""
        items = list(entries)
        if not items:
            return
        await self.redis.zadd(rk.TIMER_WHEEL, dict(items))
        # Not in the pipeline: a cluster client refuses PUBLISH in one (it has no key).
        await self.redis.publish(rk.TIMER_WAKE_CHANNEL, str(min(due for _, due in items)))

    async def restore(self, entries: Iterable[tuple[str, int]]) -> int:
        """Add the ``(member, due ms)`` entries that are neither on the wheel nor leased (Redis
        lost them); wakes the dispatchers when any was added. Returns how many were added."""
        items = list(entries)
        added = 0
        for i in range(0, len(items), 500):
            chunk = items[i : i + 500]
            args = [x for m, due in chunk for x in (m, due)]
            added += int(await self._restore(keys=[rk.TIMER_WHEEL, rk.TIMER_LEASES], args=args))
        if added:
            await self.redis.publish(rk.TIMER_WAKE_CHANNEL, str(min(d for _, d in items)))
        return added

    async def remove(self, members: Iterable[str]) -> None:
        items = list(members)
        if items:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zrem(rk.TIMER_WHEEL, *items)
                pipe.zrem(rk.TIMER_LEASES, *items)
                await pipe.execute()

    async def claim(self) -> Claim:
        res = await self._claim(
            keys=[rk.TIMER_WHEEL, rk.TIMER_LEASES, rk.TIMER_BUILT],
            args=[self.lease_ms, self.batch, self.lookahead_ms],
        )
        return Claim(
            now_ms=int(res[0]) / 1000,
            members=[m.decode() for m in res[1]],
            next_due_ms=int(float(res[2])) if res[2] else None,
            next_lease_ms=int(float(res[3])) if res[3] else None,
            built=bool(int(res[4])),
        )

    async def ack(self, members: Iterable[str]) -> None:
        items = list(members)
        if items:
            await self.redis.zrem(rk.TIMER_LEASES, *items)

    async def pending_count(self) -> int:
        return int(await self.redis.zcard(rk.TIMER_WHEEL))
