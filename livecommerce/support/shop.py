"""Which shop (host) a conversation belongs to — privacy between shops.

Hosts are separate shops: a host's agents may only see conversations about *their* shop. The
mini-program has one customer-service inbox (one app id), so the shop is derived from the
chat's context, in this order (the latest signal wins while the bot holds the conversation):

1. entering the session from a room or goods (``SessionFrom`` ``room:<id>`` / ``goods:<id>``,
   or a goods page path) -> that room's / goods' host;
2. a goods card (``miniprogrampage`` with a goods page path) -> the goods' host;
3. an order number the buyer asks about **that is theirs** -> the order's host (someone else's
   order number sets nothing, so it cannot be used to reach another shop).

At hand-off, a conversation still without a shop takes, in order: the host of the goods the
buyer most recently tapped in a live room (their analytics events naming goods, last 24 h),
the host of their latest order, ``support.default_host_id``. Otherwise it stays **unscoped**
(``host_id`` NULL): no shop's agents see it; the admin lists it and gives it to a shop.

While a conversation is queued or with an agent its shop is frozen (an agent never loses a
conversation to another shop mid-talk); new signals count from the next hand-off. No aiohttp.
"""

from __future__ import annotations

import re

import asyncpg

_ROOM_REF = re.compile(r"(?:^room:|live/|[?&]room(?:_id)?=)(\d{1,18})\b")
_GOODS_REF = re.compile(r"(?:^goods:|[?&]id=|goods[/=:])(\d{1,18})\b")
MAX_ID = 2**63 - 1
TAP_WINDOW = "24 hours"


def room_ref(text: str) -> int | None:
    """The room id in a SessionFrom / page path (``room:7``, ``live/7``, ``?room_id=7``)."""
    m = _ROOM_REF.search(text or "")
    return int(m.group(1)) if m and 0 < int(m.group(1)) <= MAX_ID else None


def goods_ref(text: str) -> int | None:
    """The goods id in a SessionFrom / page path (``goods:42``, ``...?id=42``, ``goods/42``)."""
    m = _GOODS_REF.search(text or "")
    return int(m.group(1)) if m and 0 < int(m.group(1)) <= MAX_ID else None


async def from_ref(conn: asyncpg.Connection, text: str) -> int | None:
    """The host of the room or goods ``text`` names, or None (no reference, no such row)."""
    if (room := room_ref(text)) is not None:
        host: int | None = await conn.fetchval("SELECT host_id FROM live_rooms WHERE id = $1", room)
        if host is not None:
            return host
    if (goods := goods_ref(text)) is not None:
        host = await conn.fetchval("SELECT host_id FROM goods WHERE id = $1", goods)
        return host
    return None


async def note(conn: asyncpg.Connection, openid: str, host_id: int | None) -> None:
    """Record a context signal: the conversation's shop becomes ``host_id`` unless it is
    queued or with an agent (then it is frozen). Runs under the conversation's lock."""
    if host_id is None:
        return
    await conn.execute(
        """UPDATE support_conversations SET host_id = $2
           WHERE openid = $1 AND state IN ('bot', 'closed')""",
        openid, host_id,
    )  # fmt: skip


async def tapped(conn: asyncpg.Connection, user_id: int) -> asyncpg.Record | None:
    """The goods the buyer most recently tapped in a live room (their analytics events naming
    goods, last 24 h, as :func:`resolve` reads them): ``(goods_id, at)``, or None."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""SELECT e.goods_id, e.occurred_at AS at FROM analytics_events e
            WHERE e.user_id = $1 AND e.goods_id IS NOT NULL
              AND e.occurred_at > now() - interval '{TAP_WINDOW}'
            ORDER BY e.occurred_at DESC LIMIT 1""",
        user_id,
    )
    return row


async def resolve(conn: asyncpg.Connection, openid: str, default_host_id: int) -> int | None:
    """The shop for a hand-off (see the module docstring); stored on the conversation.

    Returns the host id, or None (unscoped)."""
    host = await guess(conn, openid, default_host_id)
    if host is not None:
        await conn.execute(
            "UPDATE support_conversations SET host_id = $2 WHERE openid = $1", openid, host
        )
    return host


async def guess(conn: asyncpg.Connection, openid: str, default_host_id: int) -> int | None:
    """The conversation's shop, or the one a hand-off would give it now (nothing stored)."""
    host: int | None = await conn.fetchval(
        "SELECT host_id FROM support_conversations WHERE openid = $1", openid
    )
    if host is not None:
        return host
    user_id = await conn.fetchval("SELECT id FROM users WHERE openid = $1", openid)
    if user_id is not None:
        host = await conn.fetchval(
            f"""SELECT g.host_id FROM analytics_events e JOIN goods g ON g.id = e.goods_id
                WHERE e.user_id = $1 AND e.goods_id IS NOT NULL
                  AND e.occurred_at > now() - interval '{TAP_WINDOW}'
                  AND g.host_id IS NOT NULL
                ORDER BY e.occurred_at DESC LIMIT 1""",
            user_id,
        )
        if host is None:
            host = await conn.fetchval(
                """SELECT host_id FROM orders WHERE user_id = $1 AND host_id IS NOT NULL
                   ORDER BY id DESC LIMIT 1""",
                user_id,
            )
    if host is None and default_host_id:
        host = await conn.fetchval("SELECT id FROM hosts WHERE id = $1", default_host_id)
    return host
