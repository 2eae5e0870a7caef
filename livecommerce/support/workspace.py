"""What an agent reads and writes in a conversation: its history with the buyer's recent orders
and the goods they tapped (all limited to the agent's shop), replies within WeChat's window.

No aiohttp here. Errors: ``NotFound`` for a conversation of another shop (same as none),
``Conflict`` (``not_held``, ``window_closed``, ``quota_used``) for a reply that cannot go out.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from livecommerce.errors import Conflict, NotFound
from livecommerce.support import agents

TAPPED_DAYS = 7


async def history(
    pool: asyncpg.Pool, host_id: int, conv_id: int, limit: int = 50
) -> dict[str, Any]:
    """The shop's conversation, its latest ``limit`` messages both ways (oldest first, replies
    with their send state), the buyer's 5 latest orders **in this shop** and up to 5 goods of
    this shop they tapped in a live room in the last 7 days (latest first)."""
    conv = await agents.conversation(pool, host_id, conv_id)
    openid = conv["openid"]
    messages = await pool.fetch(
        """SELECT * FROM (
             SELECT 'buyer' AS sender, msg_type AS kind, content, 'received' AS state,
                    received_at AS at FROM support_inbox WHERE openid = $1
             UNION ALL
             SELECT CASE WHEN kind = 'agent' THEN 'agent' ELSE 'bot' END, kind,
                    COALESCE(body -> 'text' ->> 'content', ''), state, created_at
               FROM support_replies WHERE openid = $1) m
           ORDER BY at DESC LIMIT $2""",
        openid, limit,
    )  # fmt: skip
    orders = await pool.fetch(
        """SELECT o.id, o.title, o.quantity, o.status, o.total_fen, o.created_at
           FROM orders o JOIN users u ON u.id = o.user_id
           WHERE u.openid = $1 AND o.host_id = $2 ORDER BY o.id DESC LIMIT 5""",
        openid, host_id,
    )  # fmt: skip
    goods = await pool.fetch(
        f"""SELECT g.id, g.title, g.price_fen, g.stock, t.at AS tapped_at FROM (
              SELECT e.goods_id, max(e.occurred_at) AS at
              FROM analytics_events e JOIN users u ON u.id = e.user_id
              WHERE u.openid = $1 AND e.user_id IS NOT NULL AND e.goods_id IS NOT NULL
                AND e.occurred_at > now() - interval '{TAPPED_DAYS} days'
              GROUP BY e.goods_id
              UNION ALL
              SELECT last_goods_id, updated_at FROM support_conversations
              WHERE openid = $1 AND last_goods_id IS NOT NULL) t
            JOIN goods g ON g.id = t.goods_id
            WHERE g.host_id = $2
            ORDER BY t.at DESC LIMIT 5""",
        openid, host_id,
    )  # fmt: skip
    seen: set[int] = set()
    tapped = []
    for g in goods:
        if g["id"] not in seen:
            seen.add(g["id"])
            tapped.append(dict(g))
    return {
        "conversation": conv,
        "messages": [dict(m) for m in reversed(messages)],
        "orders": [dict(o) for o in orders],
        "goods": tapped,
    }


async def reply(pool: asyncpg.Pool, agent_id: int, conv_id: int, text: str) -> dict[str, Any]:
    """Queue the agent's text to the buyer (the sender sends it through WeChat's send API).

    Refused before queueing when WeChat would refuse it: 409 ``window_closed`` (no buyer
    message within 48 h: WeChat's 45015) or ``quota_used`` (the 5 replies of the window sent or
    queued: 45047). A reply being sent right now is counted once (the sender has taken it from
    the window; only unclaimed pending replies are added). The check is advisory: the sender's
    ledger is what guarantees WeChat's limit. Returns ``{id, state: pending, created_at,
    window_left}``."""
    async with pool.acquire() as conn, conn.transaction():
        held = await _held(conn, agent_id, conv_id)
        window = await conn.fetchrow(
            """SELECT window_until, window_until > now() AS open,
                      window_limit - window_sent - (SELECT count(*) FROM support_replies
                          WHERE openid = $1 AND state = 'pending'
                            AND (claimed_until IS NULL OR claimed_until < now())) AS left_
               FROM support_windows WHERE openid = $1""",
            held,
        )
        if window is None or not window["open"]:
            raise Conflict(
                "the buyer's 48 h reply window has closed; they must message again",
                code="window_closed",
            )
        if window["left_"] <= 0:
            raise Conflict(
                "WeChat's reply quota for this buyer is used up until they message again",
                code="quota_used",
            )
        row = await conn.fetchrow(
            """INSERT INTO support_replies (openid, kind, body) VALUES ($1, 'agent', $2)
               RETURNING id, state, created_at""",
            held, {"msgtype": "text", "text": {"content": text}},
        )  # fmt: skip
        return {**dict(row), "window_left": window["left_"] - 1}


async def _held(conn: asyncpg.Connection, agent_id: int, conv_id: int) -> str:
    agent = await conn.fetchrow("SELECT host_id FROM support_agents WHERE id = $1", agent_id)
    conv = await conn.fetchrow(
        """SELECT openid, state, agent_id FROM support_conversations
           WHERE id = $1 AND host_id = $2 FOR UPDATE""",
        conv_id, agent["host_id"] if agent else None,
    )  # fmt: skip
    if conv is None:
        raise NotFound("no such conversation", code="conversation_not_found")
    if conv["state"] != "agent" or conv["agent_id"] != agent_id:
        raise Conflict("the conversation is not held by you", code="not_held")
    openid: str = conv["openid"]
    return openid
