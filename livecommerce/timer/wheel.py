"""The Redis side of scheduled pushes: add, remove, claim with a lease, acknowledge."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

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
    """The timer wheel, split over ``shards`` sorted sets (``redis_keys.timer_keys``): a schedule
    lives on wheel (id mod shards), so adding, removing and acking touch one wheel per member;
    a claim runs the atomic claim script on every wheel (concurrently; on a cluster each on its
    own shard) and merges the results. Exactly once is per member, and a member is only ever on
    its own wheel: splitting changes nothing about it. ``batch`` is per wheel."""

    def __init__(
        self,
        redis: Redis,
        *,
        lease_ms: int,
        batch: int,
        lookahead_ms: int = 0,
        shards: int = 1,
    ) -> None:
        self.redis = redis
        self.lease_ms = lease_ms
        self.batch = batch
        self.lookahead_ms = lookahead_ms
        self.keys = [rk.timer_keys(k) for k in range(max(1, shards))]
        self._claim = redis.register_script(_CLAIM)
        self._restore = redis.register_script(_RESTORE)

    def _by_wheel(self, members: Iterable[str]) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        n = len(self.keys)
        for m in members:
            parsed = parse_member(m)
            out.setdefault(parsed[0] % n if parsed else 0, []).append(m)
        return out

    async def add(self, entries: Iterable[tuple[str, int]]) -> None:
        """Put members on the wheel at their due times (ms) and wake the dispatchers."""
        items = list(entries)
        if not items:
            return
        due = dict(items)
        groups = self._by_wheel(due)
        if len(groups) == 1:
            k, members = next(iter(groups.items()))
            await self.redis.zadd(self.keys[k][0], {m: due[m] for m in members})
        else:
            async with self.redis.pipeline(transaction=False) as pipe:
                for k, members in groups.items():
                    pipe.zadd(self.keys[k][0], {m: due[m] for m in members})
                await pipe.execute()
        # Not in the pipeline: a cluster client refuses PUBLISH in one (it has no key).
        await self.redis.publish(rk.TIMER_WAKE_CHANNEL, str(min(due.values())))

    async def restore(self, entries: Iterable[tuple[str, int]]) -> int:
        """Add the ``(member, due ms)`` entries that are neither on the wheel nor leased (Redis
        lost them); wakes the dispatchers when any was added. Returns how many were added."""
        items = list(entries)
        due = dict(items)
        added = 0
        for k, members in self._by_wheel(due).items():
            wheel, leases, _ = self.keys[k]
            for i in range(0, len(members), 500):
                args = [x for m in members[i : i + 500] for x in (m, due[m])]
                added += int(await self._restore(keys=[wheel, leases], args=args))
        if added:
            await self.redis.publish(rk.TIMER_WAKE_CHANNEL, str(min(d for _, d in items)))
        return added

    async def remove(self, members: Iterable[str]) -> None:
        groups = self._by_wheel(members)
        if groups:
            async with self.redis.pipeline(transaction=False) as pipe:
                for k, items in groups.items():
                    pipe.zrem(self.keys[k][0], *items)
                    pipe.zrem(self.keys[k][1], *items)
                await pipe.execute()

    async def claim(self) -> Claim:
        """Claim from every wheel; the earliest next due time and lease expiry of them all,
        ``built`` only when every wheel is."""
        results = await asyncio.gather(
            *(
                self._claim(keys=list(keys), args=[self.lease_ms, self.batch, self.lookahead_ms])
                for keys in self.keys
            )
        )
        claims = [
            Claim(
                now_ms=int(res[0]) / 1000,
                members=[m.decode() for m in res[1]],
                next_due_ms=int(float(res[2])) if res[2] else None,
                next_lease_ms=int(float(res[3])) if res[3] else None,
                built=bool(int(res[4])),
            )
            for res in results
        ]
        dues = [c.next_due_ms for c in claims if c.next_due_ms is not None]
        leases = [c.next_lease_ms for c in claims if c.next_lease_ms is not None]
        return Claim(
            now_ms=claims[0].now_ms,
            members=[m for c in claims for m in c.members],
            next_due_ms=min(dues) if dues else None,
            next_lease_ms=min(leases) if leases else None,
            built=all(c.built for c in claims),
        )

    async def ack(self, members: Iterable[str]) -> None:
        for k, items in self._by_wheel(members).items():
            await self.redis.zrem(self.keys[k][1], *items)

    async def leased(self) -> set[str]:
        """Every member currently leased (being fired by some dispatcher), on any wheel."""
        out: set[str] = set()
        for _, leases, _ in self.keys:
            raw = cast("list[bytes]", await self.redis.zrange(leases, 0, -1))
            out.update(m.decode() for m in raw)
        return out

    async def mark_built(self) -> None:
        """Record that every wheel was built from PostgreSQL."""
        for _, _, built in self.keys:
            await self.redis.set(built, "1")

    async def pending_count(self) -> int:
        return sum([int(await self.redis.zcard(wheel)) for wheel, _, _ in self.keys])
