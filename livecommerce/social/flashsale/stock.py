"""The Redis side of flash sales: the take, return and load scripts (``lua/flashsale_*.lua``),
the claims' times and the stock left.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import asyncpg
from redis.asyncio import Redis

from livecommerce import redis_keys as rk
from livecommerce.config import FlashSaleConfig

_LUA = Path(__file__).resolve().parents[2] / "lua"


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Take:
    code: str
    stock_left: int


class FlashStock:
    """The Redis side of flash sales; scripts registered once per client."""

    def __init__(self, redis: Redis, cfg: FlashSaleConfig) -> None:
        self.redis = redis
        self.cfg = cfg
        self._take = redis.register_script((_LUA / "flashsale_take.lua").read_text())
        self._return = redis.register_script((_LUA / "flashsale_return.lua").read_text())
        self._load = redis.register_script((_LUA / "flashsale_load.lua").read_text())
        # Rebuilds in progress on this node, by sale: a rush on a cold sale runs one, not one
        # per buyer (which would queue every buyer behind the PostgreSQL pool).
        self.reconciling: dict[int, asyncio.Task[bool]] = {}

    @staticmethod
    def _keys(sale_id: int) -> list[str]:
        return [
            rk.flash_meta(sale_id),
            rk.flash_buyers(sale_id),
            rk.flash_claims(sale_id),
            rk.flash_claim_times(sale_id),
        ]

    async def take(self, sale_id: int, user_id: int, quantity: int, claim: str) -> Take:
        res = await self._take(keys=self._keys(sale_id), args=[user_id, quantity, claim])
        return Take(code=res[0].decode(), stock_left=int(res[1]))

    async def give_back(self, sale_id: int, claim: str) -> int:
        """Return a claim's units (no-op if already returned); the stock left or -1."""
        return int(await self._return(keys=self._keys(sale_id), args=[claim]))

    async def unconfirmed(self, sale_id: int, older_than_ms: float, limit: int) -> list[str]:
        """Claims taken more than ``older_than_ms`` ago (Redis clock) not yet seen in
        PostgreSQL by a sweep."""
        sec, usec = await self.redis.time()
        until = sec * 1000 + usec // 1000 - older_than_ms
        raw = cast(
            "list[bytes]",
            await self.redis.zrangebyscore(
                rk.flash_claim_times(sale_id), "-inf", until, start=0, num=limit
            ),
        )
        return [m.decode() for m in raw]

    async def confirm(self, sale_id: int, claims: list[str]) -> None:
        """These claims' orders are in PostgreSQL: stop timing them."""
        if claims:
            await self.redis.zrem(rk.flash_claim_times(sale_id), *claims)

    async def stock_left(self, sale_id: int) -> int | None:
        raw = await self.redis.hget(rk.flash_meta(sale_id), "stock")
        return None if raw is None else int(raw)

    async def load(self, sale: asyncpg.Record, buyers: list[Any], claims: list[Any]) -> bool:
        expire_ms = _ms(sale["ends_at"]) + self.cfg.redis_ttl_after_end_seconds * 1000
        args: list[Any] = [
            _ms(sale["starts_at"]),
            _ms(sale["ends_at"]),
            sale["per_user_limit"],
            sale["stock"] - sale["sold"],
            expire_ms,
            len(buyers),
        ]
        for b in buyers:
            args += [b["user_id"], b["quantity"]]
        for c in claims:
            args += [c["claim"], f"{c['user_id']}:{c['quantity']}"]
        return bool(await self._load(keys=self._keys(sale["id"]), args=args))
