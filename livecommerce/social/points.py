"""The points ledger: immutable entries with idempotency keys, credited in expiring lots.

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
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from livecommerce.config import PointsConfig
from livecommerce.errors import Conflict, NotFound, ValidationError
from livecommerce.notify import outbox

ACTIONS = ("checkin", "share")
MAX_PAGE = 50


def now() -> datetime:
    return datetime.now(UTC)


def local_day(cfg: PointsConfig, at: datetime) -> date:
    return at.astimezone(ZoneInfo(cfg.time_zone)).date()


def entry_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "delta": row["delta"],
        "balance_after": row["balance_after"],
        "day": row["day"].isoformat(),
        "order_id": row["order_id"],
        "shortfall": row["shortfall"],
        "created_at": row["created_at"].isoformat(),
    }


async def _lock_account(conn: asyncpg.Connection, user_id: int) -> int:
    await conn.execute(
        "INSERT INTO points_accounts (user_id) VALUES ($1) ON CONFLICT DO NOTHING", user_id
    )
    balance: int = await conn.fetchval(
        "SELECT balance FROM points_accounts WHERE user_id = $1 FOR UPDATE", user_id
    )
    return balance


async def _entry(
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


async def _seen(conn: asyncpg.Connection, user_id: int, key: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM points_entries WHERE user_id = $1 AND idempotency_key = $2",
            user_id,
            key,
        )
    )


async def _set_balance(conn: asyncpg.Connection, user_id: int, balance: int) -> None:
    await conn.execute(
        "UPDATE points_accounts SET balance = $2 WHERE user_id = $1", user_id, balance
    )


async def _retire_expired(
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
        await _entry(
            conn, cfg, user_id, "expire", -lot["expired"], balance, f"expire:lot:{lot['id']}", at
        )
    if lots:
        await _set_balance(conn, user_id, balance)
    return balance


async def _open(conn: asyncpg.Connection, cfg: PointsConfig, user_id: int, at: datetime) -> int:
    """Lock the account and retire what has expired; the spendable balance."""
    balance = await _lock_account(conn, user_id)
    return await _retire_expired(conn, cfg, user_id, balance, at)


async def _credit(
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
    """Credit ``amount`` as a new lot (account must be open); the entry id or None (a replay)."""
    balance = await _open(conn, cfg, user_id, at)
    if await _seen(conn, user_id, key):
        return None
    entry_id = await _entry(conn, cfg, user_id, kind, amount, balance + amount, key, at, order_id)
    if entry_id is None:
        return None
    await conn.execute(
        """INSERT INTO points_lots (user_id, entry_id, amount, remaining, expires_at)
           VALUES ($1, $2, $3, $3, $4)""",
        user_id,
        entry_id,
        amount,
        expires_at or at + timedelta(days=cfg.lot_ttl_days),
    )
    await _set_balance(conn, user_id, balance + amount)
    return entry_id


async def _debit(
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
    balance = await _open(conn, cfg, user_id, at)
    if await _seen(conn, user_id, key):
        return None
    if balance < amount and not partial:
        raise Conflict(
            f"not enough points: {balance} available, {amount} needed", code="insufficient_points"
        )
    take = min(amount, balance)
    entry_id = await _entry(
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
    await _set_balance(conn, user_id, balance - take)
    return take


# -- earning --------------------------------------------------------------------------------


async def checkin(
    conn: asyncpg.Connection, cfg: PointsConfig, user_id: int, at: datetime | None = None
) -> dict[str, Any]:
    """The daily check-in: credited once per calendar day; the unique (user, day) row decides."""
    at = at or now()
    day = local_day(cfg, at)
    async with conn.transaction():
        first = await conn.fetchval(
            """INSERT INTO points_checkins (user_id, day) VALUES ($1, $2)
               ON CONFLICT DO NOTHING RETURNING 1""",
            user_id,
            day,
        )
        credited = False
        if first:
            entry = await _credit(
                conn, cfg, user_id, "checkin", cfg.checkin_points, f"checkin:{day}", at
            )
            credited = entry is not None
    return await _result(conn, cfg, user_id, "checkin", credited, cfg.checkin_points, at)


async def share(
    conn: asyncpg.Connection,
    cfg: PointsConfig,
    user_id: int,
    goods_id: int,
    at: datetime | None = None,
) -> dict[str, Any]:
    """Sharing goods: each goods once a day, at most ``share_daily_cap`` credits a day."""
    at = at or now()
    day = local_day(cfg, at)
    reason = None
    async with conn.transaction():
        if not await conn.fetchval(
            "SELECT 1 FROM goods WHERE id = $1 AND status <> 'draft'", goods_id
        ):
            raise ValidationError("goods_id", "no such goods")
        await _open(conn, cfg, user_id, at)  # the account lock serializes the cap check
        key = f"share:{day}:{goods_id}"
        shares = await conn.fetchval(
            """SELECT count(*) FROM points_entries
               WHERE user_id = $1 AND day = $2 AND kind = 'share'""",
            user_id,
            day,
        )
        if await _seen(conn, user_id, key):
            reason = "already_shared"
        elif shares >= cfg.share_daily_cap:
            reason = "daily_cap"
        else:
            await _credit(conn, cfg, user_id, "share", cfg.share_points, key, at)
    result = await _result(conn, cfg, user_id, "share", reason is None, cfg.share_points, at)
    if reason:
        result["reason"] = reason
    return result


async def _result(
    conn: asyncpg.Connection,
    cfg: PointsConfig,
    user_id: int,
    action: str,
    credited: bool,
    points: int,
    at: datetime,
) -> dict[str, Any]:
    return {
        "action": action,
        "credited": credited,
        "points": points if credited else 0,
        "day": local_day(cfg, at).isoformat(),
        "balance": await balance(conn, user_id, at),
    }


def purchase_points(cfg: PointsConfig, total_fen: int) -> int:
    return (total_fen // 100) * cfg.purchase_points_per_yuan


async def credit_purchase(
    conn: asyncpg.Connection,
    cfg: PointsConfig,
    user_id: int,
    order_id: int,
    total_fen: int,
    at: datetime | None = None,
) -> int:
    """Points for a paid order (once per order); the points credited."""
    amount = purchase_points(cfg, total_fen)
    if amount <= 0:
        return 0
    entry = await _credit(
        conn, cfg, user_id, "purchase", amount, f"purchase:order:{order_id}", at or now(),
        order_id=order_id,
    )  # fmt: skip
    return amount if entry is not None else 0


async def reverse_purchase(
    conn: asyncpg.Connection, cfg: PointsConfig, user_id: int, order_id: int,
    at: datetime | None = None,
) -> int:  # fmt: skip
    """The order was refunded in full: take back what is left of its purchase credit (once).
    Points already spent cannot be taken: the entry records them as ``shortfall`` and the
    balance stays >= 0. Returns the points taken."""
    return await _reverse_up_to(
        conn, cfg, user_id, order_id, None, f"purchase_reversal:order:{order_id}", at or now()
    )


async def reverse_for_refund(
    conn: asyncpg.Connection, cfg: PointsConfig, user_id: int, order_id: int, refund_id: int,
    at: datetime | None = None,
) -> int:  # fmt: skip
    """A refund of (part of) the order's payment: reverse the purchase credit in proportion.

    The reversals of an order add up to ``floor(credited x refunded / paid)``, ``refunded``
    being the refunds of the order's own payment that are not ``closed``: partial refunds add
    up, a full refund takes back the whole credit, a refund of another transaction of the
    order (a double payment) takes nothing, and nothing is ever taken twice (the key is the
    refund; the sum of earlier reversals, shortfalls included, is subtracted). Returns the
    points taken.
    """
    share = await _refund_share(conn, order_id)
    if share is None:
        return 0
    return await _reverse_up_to(
        conn, cfg, user_id, order_id, share, f"purchase_reversal:refund:{refund_id}", at or now()
    )


async def _refund_share(conn: asyncpg.Connection, order_id: int) -> tuple[int, int] | None:
    """(refunded, paid) of the order's own payment, refunded = its refunds not closed."""
    row = await conn.fetchrow(
        """SELECT p.amount_fen AS paid,
                  (SELECT COALESCE(sum(r.amount_fen), 0)::bigint FROM refunds r
                   WHERE r.transaction_id = o.transaction_id AND r.status <> 'closed') AS refunded
           FROM orders o JOIN payments p ON p.transaction_id = o.transaction_id
           WHERE o.id = $1""",
        order_id,
    )
    if row is None or row["paid"] <= 0:
        return None
    return min(row["refunded"], row["paid"]), row["paid"]


async def _reversed(conn: asyncpg.Connection, user_id: int, order_id: int) -> tuple[int, int]:
    """(reversed, shortfall) of the order's purchase credit, net of what closed refunds gave
    back: reversals count what they took plus their shortfall; a restore counts what it
    credited plus the shortfall it cancelled."""
    row = await conn.fetchrow(
        """SELECT COALESCE(sum(CASE WHEN kind = 'purchase_reversal' THEN shortfall - delta
                                    ELSE -(delta + shortfall) END), 0)::int AS net,
                  COALESCE(sum(CASE WHEN kind = 'purchase_reversal' THEN shortfall
                                    ELSE -shortfall END), 0)::int AS short
           FROM points_entries WHERE user_id = $1 AND order_id = $2
             AND kind IN ('purchase_reversal', 'purchase_restore')""",
        user_id,
        order_id,
    )
    return row["net"], row["short"]


async def restore_for_closed_refund(
    conn: asyncpg.Connection, cfg: PointsConfig, user_id: int, order_id: int, refund_id: int,
    at: datetime | None = None,
) -> int:  # fmt: skip
    """WeChat Pay closed a refund (the buyer was not paid back): give back what the order's
    purchase reversals took beyond ``floor(credited x refunded / paid)`` now that the closed
    refund no longer counts — once (the key is the closed refund; the net of earlier reversals
    and restores is what is compared, so a reversal applied after the close is covered too).

    Shortfall (points the reversals could not take because they were spent) is cancelled
    first, as it cost the buyer nothing; the rest is credited as a new lot expiring when the
    purchase's own points do (``lot_ttl_days`` from now if that has passed). Returns the points
    credited.
    """
    at = at or now()
    share = await _refund_share(conn, order_id)
    if share is None:
        return 0
    balance = await _open(conn, cfg, user_id, at)  # serializes with this user's reversals
    key = f"purchase_restore:refund:{refund_id}"
    if await _seen(conn, user_id, key):
        return 0
    credit = await conn.fetchrow(
        """SELECT e.delta, l.expires_at FROM points_entries e
           LEFT JOIN points_lots l ON l.entry_id = e.id
           WHERE e.user_id = $1 AND e.idempotency_key = $2""",
        user_id,
        f"purchase:order:{order_id}",
    )
    if credit is None or not credit["delta"]:
        return 0
    credited: int = credit["delta"]
    target = min(credited * share[0] // share[1], credited)
    net, short = await _reversed(conn, user_id, order_id)
    give = net - target
    if give <= 0:
        return 0
    cancel = min(give, max(short, 0))
    back: int = give - cancel
    entry_id = await _entry(conn, cfg, user_id, "purchase_restore", back, balance + back, key, at,
                            order_id, cancel)  # fmt: skip
    if entry_id is None or back == 0:
        return 0
    expires = credit["expires_at"]
    await conn.execute(
        """INSERT INTO points_lots (user_id, entry_id, amount, remaining, expires_at)
           VALUES ($1, $2, $3, $3, $4)""",
        user_id,
        entry_id,
        back,
        expires if expires is not None and expires > at else at + timedelta(days=cfg.lot_ttl_days),
    )
    await _set_balance(conn, user_id, balance + back)
    return back


async def _reverse_up_to(
    conn: asyncpg.Connection,
    cfg: PointsConfig,
    user_id: int,
    order_id: int,
    share: tuple[int, int] | None,
    key: str,
    at: datetime,
) -> int:
    """Bring the order's purchase reversals up to ``share`` (refunded, paid) of its credit
    (None: all of it), under the account lock; the points taken."""
    await _open(conn, cfg, user_id, at)  # serializes this user's reversals
    credited = await conn.fetchval(
        "SELECT delta FROM points_entries WHERE user_id = $1 AND idempotency_key = $2",
        user_id,
        f"purchase:order:{order_id}",
    )
    if not credited:
        return 0
    target = credited if share is None else credited * share[0] // share[1]
    already, _ = await _reversed(conn, user_id, order_id)
    amount = min(target, credited) - already
    if amount <= 0:
        return 0
    taken = await _debit(
        conn, cfg, user_id, "purchase_reversal", amount, key, at, order_id=order_id, partial=True
    )
    return taken or 0


# -- spending -------------------------------------------------------------------------------


async def spend(
    conn: asyncpg.Connection,
    cfg: PointsConfig,
    user_id: int,
    points: int,
    order_id: int,
    at: datetime | None = None,
) -> None:
    """Spend points on an order (call inside the order's transaction: they roll back together).

    Raises:
        Conflict: ``insufficient_points``.
    """
    await _debit(conn, cfg, user_id, "spend", points, f"spend:order:{order_id}", at or now(),
                 order_id=order_id)  # fmt: skip


async def restore_spend(
    conn: asyncpg.Connection, cfg: PointsConfig, user_id: int, order_id: int,
    at: datetime | None = None,
) -> int:  # fmt: skip
    """The order was cancelled or refunded: give back the points it spent (once), each part
    with the expiry of the lot it came from; parts whose lot has expired meanwhile are not
    restored. Returns the points restored.

    Restores and retakes (:func:`retake_spend_restore`, when a full refund was closed and the
    order went back) alternate: after a retake, the next full refund gives back what that
    retake took, from the lots it took them from."""
    at = at or now()
    restores, retakes, last_retake = await _spend_restores(conn, user_id, order_id)
    if restores > retakes:
        return 0  # restored, and not taken again since
    rows = await conn.fetch(
        """SELECT d.amount, l.expires_at FROM points_entries e
           JOIN points_debits d ON d.entry_id = e.id JOIN points_lots l ON l.id = d.lot_id
           WHERE e.user_id = $1 AND ($3::bigint IS NULL AND e.idempotency_key = $2
                                     OR e.id = $3) ORDER BY l.expires_at""",
        user_id,
        f"spend:order:{order_id}",
        last_retake,
    )
    if not rows:
        return 0
    balance = await _open(conn, cfg, user_id, at)
    key = f"spend_restore:order:{order_id}" + (f":{restores + 1}" if restores else "")
    if await _seen(conn, user_id, key):
        return 0
    parts = [(r["amount"], r["expires_at"]) for r in rows if r["expires_at"] > at]
    total: int = sum(p[0] for p in parts)
    entry_id = await _entry(conn, cfg, user_id, "spend_restore", total, balance + total, key, at,
                            order_id)  # fmt: skip
    if entry_id is None:
        return 0
    for amount, expires_at in parts:
        await conn.execute(
            """INSERT INTO points_lots (user_id, entry_id, amount, remaining, expires_at)
               VALUES ($1, $2, $3, $3, $4)""",
            user_id,
            entry_id,
            amount,
            expires_at,
        )
    await _set_balance(conn, user_id, balance + total)
    return total


async def _spend_restores(
    conn: asyncpg.Connection, user_id: int, order_id: int
) -> tuple[int, int, int | None]:
    """(spend restores, spend-restore retakes, the latest retake's entry id) of an order."""
    row = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE kind = 'spend_restore') AS restores,
                  count(*) FILTER (WHERE kind = 'spend_restore_reversal') AS retakes,
                  max(id) FILTER (WHERE kind = 'spend_restore_reversal') AS last_retake
           FROM points_entries WHERE user_id = $1 AND order_id = $2
             AND kind IN ('spend_restore', 'spend_restore_reversal')""",
        user_id,
        order_id,
    )
    return int(row["restores"]), int(row["retakes"]), row["last_retake"]


async def retake_spend_restore(
    conn: asyncpg.Connection, cfg: PointsConfig, user_id: int, order_id: int,
    at: datetime | None = None,
) -> int:  # fmt: skip
    """The order's full refund was closed by WeChat Pay and the order went back to paid /
    shipped / completed: take again the points spent on it that the refund had restored (its
    discount stands again). Once per restore; points the buyer has already used are recorded
    as ``shortfall`` and not owed later (like a purchase reversal's). Returns the points taken."""
    at = at or now()
    restores, retakes, _ = await _spend_restores(conn, user_id, order_id)
    if restores <= retakes:
        return 0
    restored = await conn.fetchval(
        """SELECT delta FROM points_entries WHERE user_id = $1 AND order_id = $2
             AND kind = 'spend_restore' ORDER BY id DESC LIMIT 1""",
        user_id,
        order_id,
    )
    if not restored or restored <= 0:
        return 0
    taken = await _debit(
        conn, cfg, user_id, "spend_restore_reversal", restored,
        f"spend_restore_reversal:order:{order_id}:{restores}", at, order_id=order_id,
        partial=True,
    )  # fmt: skip
    return taken or 0


def discount_for(cfg: PointsConfig, points: int, order_total_fen: int) -> int:
    """The fen ``points`` take off an order of ``order_total_fen``.

    Raises:
        ValidationError: ``points`` worth more than ``max_discount_percent`` of the total.
    """
    discount = points * cfg.fen_per_point
    cap = order_total_fen * cfg.max_discount_percent // 100
    if discount > cap:
        raise ValidationError(
            "points", f"at most {cap // cfg.fen_per_point} points can be used on this order"
        )
    return discount


# -- reading --------------------------------------------------------------------------------


async def balance(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: int, at: datetime | None = None
) -> int:
    """Spendable points: the remaining points of lots not expired at ``at``."""
    value = await conn.fetchval(
        """SELECT coalesce(sum(remaining), 0) FROM points_lots
           WHERE user_id = $1 AND remaining > 0 AND expires_at > $2""",
        user_id,
        at or now(),
    )
    return int(value)


async def expiring(
    conn: asyncpg.Connection | asyncpg.Pool,
    user_id: int,
    within: timedelta,
    at: datetime | None = None,
) -> list[dict[str, Any]]:
    """Lots with points left that expire within ``within`` of ``at``, soonest first."""
    at = at or now()
    rows = await conn.fetch(
        """SELECT id, remaining, expires_at FROM points_lots
           WHERE user_id = $1 AND remaining > 0 AND expires_at > $2 AND expires_at <= $3
           ORDER BY expires_at, id LIMIT 100""",
        user_id,
        at,
        at + within,
    )
    return [
        {"lot_id": r["id"], "points": r["remaining"], "expires_at": r["expires_at"].isoformat()}
        for r in rows
    ]


async def history(
    conn: asyncpg.Connection | asyncpg.Pool,
    user_id: int,
    *,
    limit: int,
    after_id: int | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the user's ledger entries, newest first (keyset on id)."""
    rows = await conn.fetch(
        """SELECT id, kind, delta, balance_after, day, order_id, shortfall, created_at
           FROM points_entries WHERE user_id = $1 AND ($2::bigint IS NULL OR id < $2)
           ORDER BY id DESC LIMIT $3""",
        user_id,
        after_id,
        limit + 1,
    )
    items = [entry_json(r) for r in rows[:limit]]
    return items, (items[-1]["id"] if len(rows) > limit else None)


# -- expiry job -----------------------------------------------------------------------------


async def expire_due(
    pool: asyncpg.Pool, cfg: PointsConfig, batch: int, at: datetime | None = None
) -> int:
    """Retire expired lots of up to ``batch`` users; safe on several nodes (a user whose
    account is locked — by another node's sweep or a spend — is skipped: that holder retires
    them). Returns the number of users swept."""
    at = at or now()
    users = await pool.fetch(
        """SELECT DISTINCT user_id FROM points_lots
           WHERE remaining > 0 AND expires_at <= $1 LIMIT $2""",
        at,
        batch,
    )
    swept = 0
    async with pool.acquire() as conn:
        for u in users:
            async with conn.transaction():
                bal = await conn.fetchval(
                    "SELECT balance FROM points_accounts WHERE user_id = $1 FOR UPDATE SKIP LOCKED",
                    u["user_id"],
                )
                if bal is None:
                    continue
                await _retire_expired(conn, cfg, u["user_id"], bal, at)
                swept += 1
    return swept


async def seconds_to_next_expiry(conn: asyncpg.Connection | asyncpg.Pool) -> float | None:
    value = await conn.fetchval(
        """SELECT EXTRACT(EPOCH FROM min(expires_at) - now())::float8
           FROM points_lots WHERE remaining > 0"""
    )
    return None if value is None else float(value)


async def require_user(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> None:
    if not await conn.fetchval("SELECT 1 FROM users WHERE id = $1", user_id):
        raise NotFound("no such user")
