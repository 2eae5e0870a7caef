"""The ledger core: immutable entries with idempotency keys, credited in expiring lots.

Every change for a user first locks the user's ``points_accounts`` row, so a user's changes
are serialized (and the expiry job, which takes the same lock with SKIP LOCKED, never races a
spend). Under that lock a change retires the user's expired lots, then writes one entry
(unique per ``(user, idempotency_key)``: the same event twice counts once) and moves lots:

* credits (check-in, share, purchase, spend restore) add a lot expiring ``lot_ttl_days`` on;
* debits (spend, purchase reversal, expiry) take from the soonest-expiring lots first and
  record which lots they took (``points_debits``).

``points_accounts.balance`` equals the sum of the remaining points of unretired lots; its
CHECK (balance >= 0) is the database's last word on "never negative", behind the conditional
logic here. Times come from the caller (``at``) so day and expiry boundaries are testable;
calendar days are counted in ``points.time_zone``.

The helpers here are the package's own: earning, spending and the refund reversals build on
them; callers outside the package use those modules.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from livecommerce.config import PointsConfig
from livecommerce.errors import Conflict
from livecommerce.notify import outbox


def now() -> datetime:
    return datetime.now(UTC)


def purchase_key(order_id: int) -> str:
    """The idempotency key of a paid order's purchase credit (``points_entries``), which the
    reversals of its refunds look up."""
    return f"purchase:order:{order_id}"


def local_day(cfg: PointsConfig, at: datetime) -> date:
    return at.astimezone(ZoneInfo(cfg.time_zone)).date()


async def _lock_account(conn: asyncpg.Connection, user_id: int) -> int:
    await conn.execute(
        "INSERT INTO points_accounts (user_id) VALUES ($1) ON CONFLICT DO NOTHING", user_id
    )
    balance: int = await conn.fetchval(
        "SELECT balance FROM points_accounts WHERE user_id = $1 FOR UPDATE", user_id
    )
    return balance


async def entry(
    conn: asyncpg.Connection,
    cfg: PointsConfig,
    user_id: int,
    kind: str,
    delta: int,
    balance_after: int,
    key: str,
    at: datetime,
    order_id: int | None = None,
    shortfall: int = 0,
) -> int | None:
    """Insert one immutable entry; None when the key was used before (nothing changes)."""
    entry_id: int | None = await conn.fetchval(
        """INSERT INTO points_entries (user_id, kind, delta, balance_after, day,
                                       idempotency_key, order_id, shortfall, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (user_id, idempotency_key) DO NOTHING RETURNING id""",
        user_id,
        kind,
        delta,
        balance_after,
        local_day(cfg, at),
        key,
        order_id,
        shortfall,
        at,
    )
    if entry_id is not None:
        # The user's open sockets hear of the new balance (committed with the entry).
        await outbox.enqueue(
            conn,
            user_id,
            "points_changed",
            f"points:{entry_id}",
            {"entry_id": entry_id, "kind": kind, "delta": delta, "balance": balance_after},
        )
    return entry_id


async def seen(conn: asyncpg.Connection, user_id: int, key: str) -> bool:
    """Whether the user has an entry with this idempotency key."""
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM points_entries WHERE user_id = $1 AND idempotency_key = $2",
            user_id,
            key,
        )
    )


async def set_balance(conn: asyncpg.Connection, user_id: int, balance: int) -> None:
    """Store the account's balance in points (account locked)."""
    await conn.execute(
        "UPDATE points_accounts SET balance = $2 WHERE user_id = $1", user_id, balance
    )


async def add_lot(
    conn: asyncpg.Connection, user_id: int, entry_id: int, amount: int, expires_at: datetime
) -> None:
    """A new lot of ``amount`` points, credited by entry ``entry_id``, expiring ``expires_at``."""
    await conn.execute(
        """INSERT INTO points_lots (user_id, entry_id, amount, remaining, expires_at)
           VALUES ($1, $2, $3, $3, $4)""",
        user_id,
        entry_id,
        amount,
        expires_at,
    )


async def retire_expired(
    conn: asyncpg.Connection, cfg: PointsConfig, user_id: int, balance: int, at: datetime
) -> int:
    """Expire the user's lots with ``expires_at <= at`` (account locked); the new balance."""
    lots = await conn.fetch(
        """UPDATE points_lots l SET remaining = 0
           FROM (SELECT id, remaining FROM points_lots
                 WHERE user_id = $1 AND remaining > 0 AND expires_at <= $2
                 ORDER BY expires_at, id FOR UPDATE) due
           WHERE l.id = due.id
           RETURNING l.id, due.remaining AS expired""",
        user_id,
        at,
    )
    for lot in sorted(lots, key=lambda r: r["id"]):
        balance -= lot["expired"]
        await entry(
            conn, cfg, user_id, "expire", -lot["expired"], balance, f"expire:lot:{lot['id']}", at
        )
    if lots:
        await set_balance(conn, user_id, balance)
    return balance


async def open_account(
    conn: asyncpg.Connection, cfg: PointsConfig, user_id: int, at: datetime
) -> int:
    """Lock the account and retire what has expired; the spendable balance."""
    balance = await _lock_account(conn, user_id)
    return await retire_expired(conn, cfg, user_id, balance, at)


async def credit(
    conn: asyncpg.Connection,
    cfg: PointsConfig,
    user_id: int,
    kind: str,
    amount: int,
    key: str,
    at: datetime,
    *,
    order_id: int | None = None,
    expires_at: datetime | None = None,
) -> int | None:
    """Credit ``amount`` as a new lot (opening the account if need be); the entry id, or None
    (a replay)."""
    balance = await open_account(conn, cfg, user_id, at)
    if await seen(conn, user_id, key):
        return None
    entry_id = await entry(conn, cfg, user_id, kind, amount, balance + amount, key, at, order_id)
    if entry_id is None:
        return None
    await add_lot(
        conn, user_id, entry_id, amount, expires_at or at + timedelta(days=cfg.lot_ttl_days)
    )
    await set_balance(conn, user_id, balance + amount)
    return entry_id


async def debit(
    conn: asyncpg.Connection,
    cfg: PointsConfig,
    user_id: int,
    kind: str,
    amount: int,
    key: str,
    at: datetime,
    *,
    order_id: int | None = None,
    partial: bool = False,
) -> int | None:
    """Take ``amount`` from the soonest-expiring lots. With ``partial`` take what there is and
    record the rest as ``shortfall``; else too little is Conflict ``insufficient_points``.
    Returns the points taken, or None on a replayed key."""
    balance = await open_account(conn, cfg, user_id, at)
    if await seen(conn, user_id, key):
        return None
    if balance < amount and not partial:
        raise Conflict(
            f"not enough points: {balance} available, {amount} needed", code="insufficient_points"
        )
    take = min(amount, balance)
    entry_id = await entry(
        conn, cfg, user_id, kind, -take, balance - take, key, at, order_id, amount - take
    )
    if entry_id is None:
        return None
    need = take
    lots = await conn.fetch(
        """SELECT id, remaining FROM points_lots
           WHERE user_id = $1 AND remaining > 0 AND expires_at > $2
           ORDER BY expires_at, id FOR UPDATE""",
        user_id,
        at,
    )
    for lot in lots:
        if need == 0:
            break
        part = min(need, lot["remaining"])
        await conn.execute(
            "UPDATE points_lots SET remaining = remaining - $2 WHERE id = $1", lot["id"], part
        )
        await conn.execute(
            "INSERT INTO points_debits (entry_id, lot_id, amount) VALUES ($1, $2, $3)",
            entry_id,
            lot["id"],
            part,
        )
        need -= part
    if need:  # the account and the lots disagree: refuse rather than corrupt the ledger
        raise RuntimeError(f"points lots of user {user_id} short by {need}")
    await set_balance(conn, user_id, balance - take)
    return take
