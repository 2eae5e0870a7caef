"""The inbox: each pushed message stored once, processed once (across nodes and restarts).

``store`` runs before the acknowledgement: a UNIQUE ``dedup_key`` turns WeChat's retries (and
the same message reaching two nodes) into one row, and a new row opens the buyer's reply
window. ``process`` runs after it: in one transaction it locks the row (``FOR UPDATE SKIP
LOCKED``: another node busy with it is skipped), locks the buyer's conversation (one buyer's
messages are processed one at a time), decides the replies, stores them and marks the row
processed. A crash before the commit leaves the row unprocessed for the sweep; after it,
nothing runs twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from livecommerce.support import ledger
from livecommerce.support.push import Incoming


@dataclass(frozen=True, slots=True)
class Reply:
    """One message to send through the customer-service API (``body`` without ``touser``)."""

    kind: str
    body: dict[str, Any]


@dataclass(slots=True)
class Decision:
    """What processing decided: replies to send, and a label for the inbox row."""

    outcome: str
    replies: list[Reply] = field(default_factory=list)


# decide(conn, message, conversation row) -> Decision; runs inside the transaction.
Decide = Callable[[asyncpg.Connection, Incoming, asyncpg.Record], Awaitable[Decision]]


async def store(pool: asyncpg.Pool, msg: Incoming) -> int | None:
    """Insert ``msg`` and open the buyer's reply window for it (as WeChat does on receipt); its
    row id, or None when this message was received before (a retry: nothing changes)."""
    async with pool.acquire() as conn, conn.transaction():
        return await _store(conn, msg)


async def _store(conn: asyncpg.Connection, msg: Incoming) -> int | None:
    inbox_id: int | None = await conn.fetchval(
        """INSERT INTO support_inbox (dedup_key, openid, msg_type, content, payload)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (dedup_key) DO NOTHING RETURNING id""",
        msg.dedup_key, msg.from_user, msg.msg_type, msg.content, msg.as_json(),
    )  # fmt: skip
    if inbox_id is not None and msg.msg_type == "event":
        if msg.event == "user_enter_tempsession":
            await ledger.open_window(conn, msg.from_user, msg.create_time, "enter")
    elif inbox_id is not None:
        await ledger.open_window(conn, msg.from_user, msg.create_time, "message")
    return inbox_id


async def pending(pool: asyncpg.Pool, limit: int = 100) -> list[int]:
    """Ids of rows not processed yet (left by a crash or a busy node), oldest first."""
    rows = await pool.fetch(
        "SELECT id FROM support_inbox WHERE processed_at IS NULL ORDER BY id LIMIT $1", limit
    )
    return [r["id"] for r in rows]


async def process(pool: asyncpg.Pool, inbox_id: int, decide: Decide) -> Decision | None:
    """Process row ``inbox_id`` once; None when it is done already or another node holds it."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """SELECT payload FROM support_inbox
               WHERE id = $1 AND processed_at IS NULL FOR UPDATE SKIP LOCKED""",
            inbox_id,
        )
        if row is None:
            return None
        msg = Incoming(**row["payload"])
        await ledger.conversation_for_update(conn, msg.from_user)
        await conn.execute(  # the idle clock (agents.return_idle)
            "UPDATE support_conversations SET last_message_at = now() WHERE openid = $1",
            msg.from_user,
        )
        if msg.msg_type == "event" and msg.event == "user_enter_tempsession":
            await conn.execute(
                "UPDATE support_conversations SET session_from = $2 WHERE openid = $1",
                msg.from_user, msg.session_from[:256],
            )  # fmt: skip
        conversation = await conn.fetchrow(
            "SELECT * FROM support_conversations WHERE openid = $1", msg.from_user
        )
        decision = await decide(conn, msg, conversation)
        for seq, reply in enumerate(decision.replies):
            await conn.execute(
                """INSERT INTO support_replies (inbox_id, seq, openid, kind, body)
                   VALUES ($1, $2, $3, $4, $5)""",
                inbox_id, seq, msg.from_user, reply.kind, reply.body,
            )  # fmt: skip
        await conn.execute(
            "UPDATE support_inbox SET processed_at = now(), outcome = $2 WHERE id = $1",
            inbox_id, decision.outcome,
        )  # fmt: skip
        return decision
