"""Flash sales (秒杀): a Redis stock gate in front of the PostgreSQL order flow.

A purchase attempt runs one Lua script (``lua/flashsale_take.lua``) that checks the sale window
(Redis server time), a replayed Idempotency-Key, the buyer's per-user limit and the stock, and
only when all pass decrements the stock and records a *claim* (id = user + key). The order is
then persisted in PostgreSQL through :func:`orders.create_order` at the sale price, behind two
conditional guards — ``flash_sales.sold + q <= stock`` and the buyer's units ``<= limit`` — so
PostgreSQL never oversells even if Redis were wrong. If persisting fails for any reason
(including cancellation), the claim is returned (``flashsale_return.lua``: at most once).

Stock comes back when an order of the sale is cancelled, times out unpaid or is refunded: the
order-event worker calls :func:`release` (PostgreSQL counters + the claim, once per order).
PostgreSQL is the source of truth: when the sale's Redis keys are missing (new sale, Redis
restart or flush, expiry after the end), :func:`reconcile` rebuilds them from ``sold``, the
buyers' units and the live claims, and the first node to load wins.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import asyncpg
from redis.asyncio import Redis

from livecommerce import redis_keys as rk
from livecommerce.commerce import orders
from livecommerce.commerce.orders import MAX_TOTAL_FEN
from livecommerce.config import FlashSaleConfig
from livecommerce.errors import Conflict, NotFound, ValidationError
from livecommerce.realtime.broker import Broker
from livecommerce.rooms.service import owned_room, require_live

log = logging.getLogger("livecommerce.flashsale")
_LUA = Path(__file__).resolve().parent.parent / "lua"
SALE_COLUMNS = """s.id, s.host_id, s.goods_id, s.sale_price_fen, s.stock, s.sold, s.per_user_limit,
    s.starts_at, s.ends_at, s.created_at, g.title, g.images, g.price_fen,
    g.status AS goods_status"""
REFUSALS = {
    "not_started": "the flash sale has not started yet",
    "ended": "the flash sale has ended",
    "sold_out": "the flash sale is sold out",
    "limit_reached": "you have reached this sale's per-user limit",
}


class _Replay(Exception):
    """The key already has an order: nothing was written; answer that order."""

    def __init__(self, order: dict[str, Any]) -> None:
        self.order = order


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def claim_id(user_id: int, idempotency_key: str) -> str:
    return f"{user_id}/{idempotency_key}"


@dataclass(frozen=True, slots=True)
class Purchase:
    order: dict[str, Any]
    created: bool
    stock_left: int | None  # after this purchase (None on a replay)


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


def sale_json(row: asyncpg.Record, stock_left: int | None = None) -> dict[str, Any]:
    return {
        "id": row["id"],
        "host_id": row["host_id"],
        "goods": {
            "id": row["goods_id"],
            "title": row["title"],
            "image": row["images"][0] if row["images"] else "",
            "price_fen": row["price_fen"],
        },
        "sale_price_fen": row["sale_price_fen"],
        "stock": row["stock"],
        "stock_left": row["stock"] - row["sold"] if stock_left is None else max(stock_left, 0),
        "per_user_limit": row["per_user_limit"],
        "starts_at": row["starts_at"].isoformat(),
        "ends_at": row["ends_at"].isoformat(),
        "created_at": row["created_at"].isoformat(),
    }


async def _sale_row(conn: asyncpg.Connection | asyncpg.Pool, sale_id: int) -> asyncpg.Record:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {SALE_COLUMNS} FROM flash_sales s JOIN goods g ON g.id = s.goods_id"
        " WHERE s.id = $1",
        sale_id,
    )
    if row is None:
        raise NotFound("no such flash sale", code="not_found")
    return row


async def create_sale(
    conn: asyncpg.Connection,
    cfg: FlashSaleConfig,
    *,
    host_id: int,
    goods_id: int,
    sale_price_fen: int,
    stock: int,
    per_user_limit: int,
    starts_at: datetime,
    ends_at: datetime,
) -> dict[str, Any]:
    """A host creates a sale of its own goods (which must have the stock on hand).

    The sale's stock caps how many units sell at the sale price; each order still takes the
    goods' stock like any order, so cancel/timeout/late-payment paths stay the commerce core's.
    """
    if ends_at <= starts_at:
        raise ValidationError("ends_at", "must be after starts_at")
    if per_user_limit > cfg.max_per_user_limit:
        raise ValidationError("per_user_limit", f"must be at most {cfg.max_per_user_limit}")
    if sale_price_fen * per_user_limit > MAX_TOTAL_FEN:
        # A purchase (lc_flash_buy) could otherwise make an order WeChat Pay cannot charge.
        raise ValidationError(
            "sale_price_fen",
            f"sale_price_fen x per_user_limit must be at most {MAX_TOTAL_FEN} fen (WeChat Pay)",
            code="amount_too_large",
        )
    goods = await conn.fetchrow(
        "SELECT status, stock, price_fen FROM goods WHERE id = $1 AND host_id = $2",
        goods_id,
        host_id,
    )
    if goods is None or goods["status"] == "draft":
        raise NotFound("no such goods", code="goods_not_found")
    if goods["status"] != "on_sale":
        raise Conflict("these goods are not on sale", code="not_on_sale")
    if goods["stock"] < stock:
        raise Conflict("the goods do not have that much stock", code="insufficient_stock")
    sale_id = await conn.fetchval(
        """INSERT INTO flash_sales (host_id, goods_id, sale_price_fen, stock, per_user_limit,
                                    starts_at, ends_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id""",
        host_id,
        goods_id,
        sale_price_fen,
        stock,
        per_user_limit,
        starts_at,
        ends_at,
    )
    return sale_json(await _sale_row(conn, sale_id))


async def get_sale(pool: asyncpg.Pool, stock: FlashStock, sale_id: int) -> dict[str, Any]:
    """The sale with its live stock left (from Redis, rebuilt from PostgreSQL if missing).

    Raises:
        NotFound: no such sale, or its goods are (back to) a draft: drafts are never public.
    """
    row = await _sale_row(pool, sale_id)
    if row["goods_status"] == "draft":
        raise NotFound("no such flash sale", code="not_found")
    left = await stock.stock_left(sale_id)
    if left is None:
        await reconcile(pool, stock, sale_id)
        left = await stock.stock_left(sale_id)
    return sale_json(row, left)


async def reconcile(pool: asyncpg.Pool, stock: FlashStock, sale_id: int) -> bool:
    """Rebuild the sale's Redis keys from PostgreSQL if they are missing; True if loaded now.

    Concurrent calls for one sale on this node share one rebuild (single flight); a caller that
    is cancelled does not cancel it for the others.
    """
    task = stock.reconciling.get(sale_id)
    if task is None:
        task = asyncio.create_task(
            _reconcile(pool, stock, sale_id), name=f"flash-reconcile-{sale_id}"
        )
        stock.reconciling[sale_id] = task

        def done(t: asyncio.Task[bool]) -> None:
            stock.reconciling.pop(sale_id, None)
            if not t.cancelled():
                t.exception()  # retrieved: every waiter may have gone

        task.add_done_callback(done)
    return await asyncio.shield(task)


async def _reconcile(pool: asyncpg.Pool, stock: FlashStock, sale_id: int) -> bool:
    """One consistent snapshot (REPEATABLE READ) of the sale's sold count, buyers and live
    claims; the load script applies it only if no other node loaded first.
    """
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        sale = await conn.fetchrow(
            """SELECT id, stock, sold, per_user_limit, starts_at, ends_at
               FROM flash_sales WHERE id = $1""",
            sale_id,
        )
        if sale is None:
            raise NotFound("no such flash sale", code="not_found")
        buyers = await conn.fetch(
            "SELECT user_id, quantity FROM flash_sale_buyers WHERE sale_id = $1 AND quantity > 0",
            sale_id,
        )
        claims = await conn.fetch(
            "SELECT claim, user_id, quantity FROM flash_sale_orders WHERE sale_id = $1 AND holding",
            sale_id,
        )
    loaded = await stock.load(sale, list(buyers), list(claims))
    if loaded:
        log.info("flash sale %d: Redis stock rebuilt from PostgreSQL", sale_id)
    return loaded


async def _existing_order(
    pool: asyncpg.Connection | asyncpg.Pool, sale_id: int, user_id: int, key: str
) -> dict[str, Any] | None:
    order_id = await pool.fetchval(
        """SELECT o.id FROM orders o JOIN flash_sale_orders f ON f.order_id = o.id
           WHERE o.user_id = $1 AND o.idempotency_key = $2 AND f.sale_id = $3""",
        user_id,
        key,
        sale_id,
    )
    if order_id is None:
        return None
    return await orders.get_order(pool, user_id, order_id)


async def buy(
    pool: asyncpg.Pool,
    stock: FlashStock,
    *,
    sale_id: int,
    user_id: int,
    quantity: int,
    idempotency_key: str,
) -> Purchase:
    """One purchase attempt. A replayed Idempotency-Key returns the first order (not created).

    Raises:
        NotFound: no such sale. Conflict: ``not_started``, ``ended``, ``sold_out``,
            ``limit_reached``, ``in_progress`` (the same key is being processed) or an
            order-flow conflict (goods sold out or off sale).
    """
    claim = claim_id(user_id, idempotency_key)
    take = await stock.take(sale_id, user_id, quantity, claim)
    if take.code == "not_loaded":
        await reconcile(pool, stock, sale_id)
        take = await stock.take(sale_id, user_id, quantity, claim)
    if take.code in ("duplicate", "ended"):
        # A retry of a lost answer may come after the end (the window is checked first, and
        # the claim may be gone): its order, not 409 ended.
        existing = await _existing_order(pool, sale_id, user_id, idempotency_key)
        if existing is None and take.code == "ended":
            raise Conflict(REFUSALS["ended"], code="ended")
        if existing is None:
            raise Conflict(
                "a purchase with this Idempotency-Key is in progress", code="in_progress"
            )
        if existing["quantity"] != quantity:
            raise Conflict(
                "Idempotency-Key was already used for another order",
                code="idempotency_key_reused",
            )
        return Purchase(existing, False, None)
    if take.code != "ok":
        if take.code in REFUSALS:
            raise Conflict(REFUSALS[take.code], code=take.code)
        raise Conflict("the flash sale is unavailable", code="unavailable")  # not_loaded twice
    try:
        async with pool.acquire() as conn:
            order = await _persist(
                conn, stock.cfg, sale_id, user_id, quantity, idempotency_key, claim
            )
    except _Replay as replay:
        await _give_back(stock, sale_id, claim)
        return Purchase(replay.order, False, None)
    except BaseException:
        # Anything — a guard refusing, PostgreSQL down, the request cancelled — returns stock.
        await _give_back(stock, sale_id, claim)
        raise
    return Purchase(order, True, take.stock_left)


async def _give_back(stock: FlashStock, sale_id: int, claim: str) -> None:
    try:
        await asyncio.shield(stock.give_back(sale_id, claim))
    except Exception:  # Redis down: the claim stays until a reconcile; PostgreSQL is right.
        log.exception("flash sale %d: could not return claim %s", sale_id, claim)


async def _persist(
    conn: asyncpg.Connection,
    cfg: FlashSaleConfig,
    sale_id: int,
    user_id: int,
    quantity: int,
    key: str,
    claim: str,
) -> dict[str, Any]:
    """Write the order in one statement (``lc_flash_buy``, migration 0008), in autocommit.

    Every winner updates the same goods and sale rows; as one statement their locks are held
    only while PostgreSQL finishes the function and commits, not across round trips to this
    (busy) event loop, so a rush's winners do not queue behind each other's network waits.
    """
    try:
        row = await conn.fetchrow(
            "SELECT order_id, created FROM lc_flash_buy($1, $2, $3, $4, $5, $6)",
            sale_id,
            user_id,
            quantity,
            key,
            claim,
            float(cfg.payment_timeout_seconds),
        )
    except asyncpg.RaiseError as exc:
        code = exc.message
        if code == "replay":  # the same key committed meanwhile (by a racing request)
            raise _Replay(await _replayed(conn, sale_id, user_id, quantity, key)) from None
        if code in REFUSALS:
            raise Conflict(REFUSALS[code], code=code) from None
        if code == "not_on_sale":
            raise Conflict("these goods are not on sale", code="not_on_sale") from None
        if code == "goods_not_found":
            raise NotFound("no such goods") from None
        raise
    assert row is not None
    if not row["created"]:
        raise _Replay(await _replayed(conn, sale_id, user_id, quantity, key))
    return await orders.get_order(conn, user_id, row["order_id"])


async def _replayed(
    conn: asyncpg.Connection, sale_id: int, user_id: int, quantity: int, key: str
) -> dict[str, Any]:
    # The key's order must be a purchase of this sale: a plain order of the same goods (or
    # another sale's) made with it is not this purchase's answer.
    order = await _existing_order(conn, sale_id, user_id, key)
    if order is None or order["quantity"] != quantity:
        raise Conflict(
            "Idempotency-Key was already used for another order", code="idempotency_key_reused"
        )
    return order


async def sweep_stale_claims(pool: asyncpg.Pool, stock: FlashStock, batch: int = 1000) -> int:
    """Give back units taken in Redis whose purchase never reached PostgreSQL; how many.

    A node that dies between the Redis take and its PostgreSQL write strands the unit (an
    undersell, never an oversell). Claims older than ``flash_sale.stale_claim_seconds`` with
    no ``flash_sale_orders`` row are returned; those with one are confirmed. Safe on every node
    at once (returns are idempotent). Should a request still commit after its claim was given
    back, PostgreSQL's own guard (``sold + q <= stock``) refuses the unit to whoever took it
    in Redis meanwhile, so it is still never oversold.
    """
    grace = stock.cfg.stale_claim_seconds
    sales = await pool.fetch(
        "SELECT id FROM flash_sales WHERE ends_at > now() - make_interval(secs => $1)",
        float(grace) + 60.0,
    )
    returned = 0
    for sale in sales:
        sale_id = sale["id"]
        claims = await stock.unconfirmed(sale_id, grace * 1000, batch)
        if not claims:
            continue
        rows = await pool.fetch(
            "SELECT claim FROM flash_sale_orders WHERE sale_id = $1 AND claim = ANY($2::text[])",
            sale_id,
            claims,
        )
        persisted = {r["claim"] for r in rows}
        await stock.confirm(sale_id, sorted(persisted))
        for claim in claims:
            if claim not in persisted and await stock.give_back(sale_id, claim) >= 0:
                returned += 1
                log.warning("flash sale %d: gave back stale claim %s (no order)", sale_id, claim)
    return returned


async def release(conn: asyncpg.Connection, stock: FlashStock, order_id: int) -> bool:
    """The order no longer holds its sale units (cancelled, timed out, refunded): give them
    back in PostgreSQL and Redis. Once per order (``holding`` flips once); call in the
    event's transaction. True when this call released."""
    row = await conn.fetchrow(
        """UPDATE flash_sale_orders SET holding = false WHERE order_id = $1 AND holding
           RETURNING sale_id, user_id, quantity, claim""",
        order_id,
    )
    if row is None:
        return False
    await conn.execute(
        "UPDATE flash_sales SET sold = sold - $2 WHERE id = $1", row["sale_id"], row["quantity"]
    )
    await conn.execute(
        "UPDATE flash_sale_buyers SET quantity = quantity - $3 WHERE sale_id = $1 AND user_id = $2",
        row["sale_id"],
        row["user_id"],
        row["quantity"],
    )
    # Before commit, and idempotent: if the commit fails the event is retried and the second
    # return is a no-op (the claim is gone).
    await stock.give_back(row["sale_id"], row["claim"])
    return True


# -- live rooms -----------------------------------------------------------------------------


async def push_to_room(
    pool: asyncpg.Pool,
    broker: Broker,
    stock: FlashStock,
    *,
    host_id: int,
    room_id: int,
    sale_id: int,
    show_seconds: int,
) -> dict[str, Any]:
    """Show the sale as the live room's bubble, with its stock left; later purchases publish
    ``flash_sale_stock`` frames to the room (throttled). Both go through Broker.publish.

    Raises:
        NotFound: the room or the sale is not the host's (answered like missing ones).
        Conflict: ``room_not_live`` (scheduled), ``room_ended``; ``not_on_sale`` when the
            sale's goods are no longer on sale.
    """
    async with pool.acquire() as conn:
        require_live(await owned_room(conn, host_id, room_id))
        row = await _sale_row(conn, sale_id)
    if row["host_id"] != host_id:
        raise NotFound("no such flash sale", code="not_found")
    if row["goods_status"] != "on_sale":
        raise Conflict("these goods are not on sale", code="not_on_sale")
    sale = await get_sale(pool, stock, sale_id)
    body = {
        "type": "flash_sale_push",
        "push_id": secrets.token_hex(6),
        "sale": sale,
        "show_seconds": show_seconds,
    }
    await stock.redis.sadd(rk.flash_rooms(sale_id), room_id)
    published = await broker.publish(room_id, body, state_op="set", state_field="bubble")
    return {"seq": published.seq, "push_id": body["push_id"], "sale": sale}


async def announce_stock(broker: Broker, stock: FlashStock, sale_id: int, left: int) -> int:
    """Publish the stock left to every room showing the sale (at most one frame per room per
    ``flash_sale.stock_update_min_interval_ms``; sold out always). Returns frames published."""
    rooms = await stock.redis.smembers(rk.flash_rooms(sale_id))
    sent = 0
    for raw in rooms:
        room_id = int(raw)
        interval = stock.cfg.stock_update_min_interval_ms
        if left > 0 and interval > 0:
            fresh = await stock.redis.set(
                rk.flash_stock_throttle(sale_id, room_id), b"1", nx=True, px=interval
            )
            if not fresh:
                continue
        await broker.publish(
            room_id, {"type": "flash_sale_stock", "sale_id": sale_id, "stock_left": max(left, 0)}
        )
        sent += 1
    return sent
