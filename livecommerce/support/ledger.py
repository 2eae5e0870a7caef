"""WeChat's customer-service reply window per buyer, kept in PostgreSQL before WeChat counts it.

Mini-program rules (reference A.2): a user message opens **5 replies within 48 h**; entering the
customer-service session opens **2 replies within 1 min**. We open the window from the earlier
of WeChat's ``CreateTime`` and our clock (so our window never outlives WeChat's), and consume one
reply with a conditional UPDATE before every send: a reply that would exceed it is not sent.
The window is reset when the message is *received* (before the acknowledgement), not when it is
processed: replies sent after WeChat got a message count against that message's window, even
when we process it later (under load, processing lags).
"""

from __future__ import annotations

import asyncpg

MESSAGE_LIMIT, MESSAGE_SECONDS = 5, 48 * 3600
ENTER_LIMIT, ENTER_SECONDS = 2, 60


async def conversation_for_update(conn: asyncpg.Connection, openid: str) -> asyncpg.Record:
    """The buyer's conversation row, created if new, locked until the transaction ends."""
    await conn.execute(
        "INSERT INTO support_conversations (openid) VALUES ($1) ON CONFLICT DO NOTHING", openid
    )
    row: asyncpg.Record = await conn.fetchrow(
        "SELECT * FROM support_conversations WHERE openid = $1 FOR UPDATE", openid
    )
    return row


async def open_window(
    conn: asyncpg.Connection | asyncpg.Pool, openid: str, create_time: int, kind: str
) -> None:
    """Record a user action when it is received: ``message`` resets the window to 5 / 48 h;
    ``enter`` opens 2 / 1 min unless a window with replies left is open. One statement."""
    limit, seconds = (MESSAGE_LIMIT, MESSAGE_SECONDS) if kind == "message" else (
        ENTER_LIMIT, ENTER_SECONDS)  # fmt: skip
    await conn.execute(
        """INSERT INTO support_windows (openid, last_user_at, window_until, window_limit)
           VALUES ($1, LEAST(now(), to_timestamp($2)),
                   LEAST(now(), to_timestamp($2)) + make_interval(secs => $3), $4)
           ON CONFLICT (openid) DO UPDATE SET last_user_at = EXCLUDED.last_user_at,
               window_until = EXCLUDED.window_until, window_limit = EXCLUDED.window_limit,
               window_sent = 0, followed_up = false
           WHERE $5 OR support_windows.window_until <= now()
                 OR support_windows.window_sent >= support_windows.window_limit""",
        openid, create_time, seconds, limit, kind == "message",
    )  # fmt: skip


async def take(conn: asyncpg.Connection | asyncpg.Pool, openid: str) -> bool:
    """Consume one reply of the buyer's window; False (nothing consumed) when closed or used up."""
    got = await conn.fetchval(
        """UPDATE support_windows SET window_sent = window_sent + 1
           WHERE openid = $1 AND window_until > now() AND window_sent < window_limit
           RETURNING window_sent""",
        openid,
    )
    return got is not None


async def give_back(conn: asyncpg.Connection | asyncpg.Pool, openid: str) -> None:
    """Return a reply that WeChat never received (transport failure) to the window."""
    await conn.execute(
        """UPDATE support_windows SET window_sent = window_sent - 1
           WHERE openid = $1 AND window_sent > 0""",
        openid,
    )


async def wechat_says(conn: asyncpg.Connection | asyncpg.Pool, openid: str, errcode: int) -> None:
    """Bring the ledger in line with WeChat: 45015 = the window has closed, 45047 = used up."""
    if errcode == 45015:
        await conn.execute(
            "UPDATE support_windows SET window_until = now() WHERE openid = $1", openid
        )
    elif errcode == 45047:
        await conn.execute(
            "UPDATE support_windows SET window_sent = window_limit WHERE openid = $1", openid
        )


async def claim_follow_up(conn: asyncpg.Connection | asyncpg.Pool, openid: str) -> bool:
    """True once per closed window: the caller may tell the buyer an answer is waiting."""
    got = await conn.fetchval(
        """UPDATE support_windows SET followed_up = true
           WHERE openid = $1 AND window_until <= now() AND NOT followed_up RETURNING openid""",
        openid,
    )
    return got is not None
