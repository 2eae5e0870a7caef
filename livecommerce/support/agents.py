"""Human agents and the hand-off state machine.

``bot -> queued -> agent -> closed -> bot`` (a closed conversation returns to the bot with the
buyer's next message); also ``agent -> agent`` (transfer) and ``agent -> queued`` (the agent
went away: re-queued after a grace period, never lost). Every move is a row in
``support_transitions``. While a conversation is ``queued`` or ``agent`` the bot is silent.

Assignment is fair, not random: the oldest queued conversation goes to the online agent with
the lowest load (``active / capacity``), ties to the one assigned longest ago. Presence is a lease
(``online_until``) the agent page renews: a refresh or a reconnect within the lease is not a
disconnect. All changes are conditional UPDATEs under row locks (two nodes, two agents clicking
"claim" at once: one wins, the other gets a 409).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from livecommerce.errors import Conflict, NotFound

AGENT_COLUMNS = "id, host_id, name, capacity, active, online_until, created_at"
CONV_COLUMNS = "id, openid, state, agent_id, queued_at, session_from, last_goods_id, updated_at"


async def move(
    conn: asyncpg.Connection, openid: str, from_state: str, to_state: str, reason: str,
    agent_id: int | None = None,
) -> None:  # fmt: skip
    """Set the conversation's state (the caller holds its lock) and record the transition."""
    await conn.execute(
        """UPDATE support_conversations SET state = $2, agent_id = $3, misses = 0,
               queued_at = CASE WHEN $2 = 'queued' THEN now() ELSE queued_at END,
               updated_at = now()
           WHERE openid = $1""",
        openid, to_state, agent_id,
    )  # fmt: skip
    await conn.execute(
        """INSERT INTO support_transitions (openid, from_state, to_state, reason, agent_id)
           VALUES ($1, $2, $3, $4, $5)""",
        openid, from_state, to_state, reason, agent_id,
    )  # fmt: skip


async def create(pool: asyncpg.Pool, host_id: int, name: str, capacity: int) -> dict[str, Any]:
    row = await pool.fetchrow(
        f"""INSERT INTO support_agents (host_id, name, capacity) VALUES ($1, $2, $3)
            RETURNING {AGENT_COLUMNS}""",
        host_id, name, capacity,
    )  # fmt: skip
    return dict(row)


async def list_for(pool: asyncpg.Pool, host_id: int) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        f"SELECT {AGENT_COLUMNS} FROM support_agents WHERE host_id = $1 ORDER BY id", host_id
    )
    return [dict(r) for r in rows]


async def _agent(conn: asyncpg.Connection, host_id: int, agent_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"SELECT {AGENT_COLUMNS} FROM support_agents WHERE id = $1 AND host_id = $2 FOR UPDATE",
        agent_id, host_id,
    )  # fmt: skip
    if row is None:
        raise NotFound("no such agent of yours")
    return row


async def presence(
    pool: asyncpg.Pool, host_id: int, agent_id: int, online: bool, lease_seconds: float
) -> dict[str, Any]:
    """Renew (``online``) or end the agent's presence lease; going online assigns queued
    conversations up to the agent's capacity."""
    async with pool.acquire() as conn, conn.transaction():
        await _agent(conn, host_id, agent_id)
        row = await conn.fetchrow(
            f"""UPDATE support_agents SET online_until = CASE WHEN $2
                    THEN now() + make_interval(secs => $3) END
                WHERE id = $1 RETURNING {AGENT_COLUMNS}""",
            agent_id, online, lease_seconds,
        )  # fmt: skip
    if online:
        async with pool.acquire() as conn, conn.transaction():
            await assign(conn)
        row = await pool.fetchrow(
            f"SELECT {AGENT_COLUMNS} FROM support_agents WHERE id = $1", agent_id
        )
    return dict(row)


async def assign(conn: asyncpg.Connection, limit: int = 100) -> int:
    """Give queued conversations (oldest first) to the least busy online agents with room;
    returns how many were assigned. Runs in the caller's transaction."""
    done = 0
    while done < limit:
        conv = await conn.fetchrow(
            """SELECT openid FROM support_conversations WHERE state = 'queued'
               ORDER BY queued_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"""
        )
        if conv is None:
            return done
        agent = await conn.fetchrow(
            """SELECT id FROM support_agents
               WHERE online_until > now() AND active < capacity
               ORDER BY active::float8 / capacity, last_assigned_at NULLS FIRST, id
               LIMIT 1 FOR UPDATE SKIP LOCKED"""
        )
        if agent is None:
            return done
        await _take(conn, agent["id"])
        await move(conn, conv["openid"], "queued", "agent", "assigned", agent["id"])
        done += 1
    return done


async def _take(conn: asyncpg.Connection, agent_id: int) -> None:
    got = await conn.fetchval(
        """UPDATE support_agents SET active = active + 1, last_assigned_at = now()
           WHERE id = $1 AND active < capacity RETURNING id""",
        agent_id,
    )
    if got is None:
        raise Conflict("the agent is at capacity", code="agent_full")


async def _release(conn: asyncpg.Connection, agent_id: int) -> None:
    await conn.execute(
        "UPDATE support_agents SET active = active - 1 WHERE id = $1 AND active > 0", agent_id
    )


async def _conversation(conn: asyncpg.Connection, conv_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"SELECT {CONV_COLUMNS} FROM support_conversations WHERE id = $1 FOR UPDATE", conv_id
    )
    if row is None:
        raise NotFound("no such conversation")
    return row


async def queue(pool: asyncpg.Pool, limit: int = 100) -> list[dict[str, Any]]:
    """Queued conversations, oldest first."""
    rows = await pool.fetch(
        f"""SELECT {CONV_COLUMNS} FROM support_conversations WHERE state = 'queued'
            ORDER BY queued_at, id LIMIT $1""",
        limit,
    )
    return [dict(r) for r in rows]


async def claim(
    pool: asyncpg.Pool, host_id: int, agent_id: int, conv_id: int, lease_seconds: float
) -> dict[str, Any]:
    """The agent takes a queued conversation (409 ``not_queued`` / ``agent_full``); claiming
    shows the agent is there, so it renews their presence lease."""
    async with pool.acquire() as conn, conn.transaction():
        await _agent(conn, host_id, agent_id)
        await conn.execute(
            """UPDATE support_agents SET online_until = GREATEST(online_until,
                   now() + make_interval(secs => $2)) WHERE id = $1""",
            agent_id, lease_seconds,
        )  # fmt: skip
        conv = await _conversation(conn, conv_id)
        if conv["state"] != "queued":
            raise Conflict(f"the conversation is {conv['state']}, not queued", code="not_queued")
        await _take(conn, agent_id)
        await move(conn, conv["openid"], "queued", "agent", "claimed", agent_id)
        return dict(await _conversation(conn, conv_id))


async def _held(
    conn: asyncpg.Connection, host_id: int, agent_id: int, conv_id: int
) -> asyncpg.Record:
    await _agent(conn, host_id, agent_id)
    conv = await _conversation(conn, conv_id)
    if conv["state"] != "agent" or conv["agent_id"] != agent_id:
        raise Conflict("the conversation is not held by this agent", code="not_held")
    return conv


async def transfer(
    pool: asyncpg.Pool, host_id: int, agent_id: int, conv_id: int, to_agent: int
) -> dict[str, Any]:
    """Hand a held conversation to another of the host's agents (online, with room)."""
    async with pool.acquire() as conn, conn.transaction():
        conv = await _held(conn, host_id, agent_id, conv_id)
        target = await _agent(conn, host_id, to_agent)
        online = await conn.fetchval(
            "SELECT online_until > now() FROM support_agents WHERE id = $1", to_agent
        )
        if to_agent == agent_id or not online:
            raise Conflict("the target agent is not online (or is you)", code="agent_offline")
        await _take(conn, target["id"])
        await _release(conn, agent_id)
        await move(conn, conv["openid"], "agent", "agent", f"transfer from {agent_id}", to_agent)
        return dict(await _conversation(conn, conv_id))


async def close(pool: asyncpg.Pool, host_id: int, agent_id: int, conv_id: int) -> dict[str, Any]:
    """End a held conversation; the agent's freed seat takes the next queued one."""
    async with pool.acquire() as conn, conn.transaction():
        conv = await _held(conn, host_id, agent_id, conv_id)
        await _release(conn, agent_id)
        await move(conn, conv["openid"], "agent", "closed", "closed", None)
        result = dict(await _conversation(conn, conv_id))
        await assign(conn)
        return result


async def reply(
    pool: asyncpg.Pool, host_id: int, agent_id: int, conv_id: int, text: str
) -> dict[str, Any]:
    """Queue an agent's text reply to the buyer (sent by the sender, within the window)."""
    async with pool.acquire() as conn, conn.transaction():
        conv = await _held(conn, host_id, agent_id, conv_id)
        row = await conn.fetchrow(
            """INSERT INTO support_replies (openid, kind, body) VALUES ($1, 'agent', $2)
               RETURNING id, state, created_at""",
            conv["openid"], {"msgtype": "text", "text": {"content": text}},
        )  # fmt: skip
        return dict(row)


async def requeue_abandoned(pool: asyncpg.Pool, grace_seconds: float) -> int:
    """Conversations whose agent's lease ended more than ``grace_seconds`` ago go back to the
    queue (then to another agent); returns how many."""
    async with pool.acquire() as conn, conn.transaction():
        # Agents first, then their conversations: the same lock order as claim/close/transfer.
        gone = await conn.fetch(
            """SELECT id FROM support_agents
               WHERE active > 0 AND (online_until IS NULL
                     OR online_until < now() - make_interval(secs => $1))
               FOR UPDATE SKIP LOCKED""",
            grace_seconds,
        )
        rows = await conn.fetch(
            """SELECT openid, agent_id FROM support_conversations
               WHERE state = 'agent' AND agent_id = ANY($1::bigint[])
               FOR UPDATE SKIP LOCKED""",
            [g["id"] for g in gone],
        )
        for r in rows:
            await _release(conn, r["agent_id"])
            await move(conn, r["openid"], "agent", "queued", "agent away")
        if rows:
            await assign(conn)
        return len(rows)


async def history(pool: asyncpg.Pool, conv_id: int, limit: int = 50) -> dict[str, Any]:
    """The conversation, its latest messages both ways and the buyer's recent orders."""
    conv = await pool.fetchrow(
        f"SELECT {CONV_COLUMNS} FROM support_conversations WHERE id = $1", conv_id
    )
    if conv is None:
        raise NotFound("no such conversation")
    messages = await pool.fetch(
        """SELECT * FROM (
             SELECT 'buyer' AS sender, msg_type AS kind, content, received_at AS at
               FROM support_inbox WHERE openid = $1
             UNION ALL
             SELECT CASE WHEN kind = 'agent' THEN 'agent' ELSE 'bot' END, kind,
                    COALESCE(body -> 'text' ->> 'content', ''), created_at
               FROM support_replies WHERE openid = $1) m
           ORDER BY at DESC LIMIT $2""",
        conv["openid"], limit,
    )  # fmt: skip
    orders = await pool.fetch(
        """SELECT o.id, o.title, o.quantity, o.status, o.total_fen, o.created_at
           FROM orders o JOIN users u ON u.id = o.user_id
           WHERE u.openid = $1 ORDER BY o.id DESC LIMIT 5""",
        conv["openid"],
    )
    return {
        "conversation": dict(conv),
        "messages": [dict(m) for m in reversed(messages)],
        "orders": [dict(o) for o in orders],
    }
