"""Human agents and the hand-off state machine, scoped to a shop.

``bot -> queued -> agent -> closed -> bot`` (a closed conversation returns to the bot with the
buyer's next message); ``queued | agent | closed -> bot`` after ``support.idle_seconds``
without a message (:func:`return_idle`); also ``agent -> agent`` (transfer) and
``agent -> queued`` (the agent went away: re-queued after a grace period, never lost; or was
deleted). Every move is a row in
``support_transitions``. While a conversation is ``queued`` or ``agent`` the bot is silent.

**Shops:** a conversation has a shop (``host_id``, see :mod:`livecommerce.support.shop`); an
agent belongs to one shop. An agent only ever sees, claims, reads and replies to conversations
of their own shop: any other conversation (another shop's, an unscoped one) is a
``NotFound`` — indistinguishable from one that does not exist.

Assignment is fair, not random: the shop's oldest queued conversation goes to the shop's online
agent with the lowest load (``active / capacity``), ties to the one assigned longest ago.
Presence is a lease (``online_until``) the agent's socket or page renews: a refresh or a
reconnect within the lease is not a disconnect. All changes are conditional UPDATEs under row
locks (two nodes, two agents clicking "claim" at once: one wins, the other gets a 409).

Functions that move conversations return the ids they moved, so the caller can tell the shop's
agents (:mod:`livecommerce.support.feed`). No aiohttp here.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from livecommerce.errors import Conflict, NotFound, Unauthorized

# ``password_version``: the version an agent session's token carries (``sv``, migration 0027);
# internal, never in an answer (the response models and feed views list their fields).
AGENT_COLUMNS = (
    "id, host_id, name, login, capacity, active, online_until,"
    " COALESCE(online_until > now(), false) AS online, created_at, password_version"
)
CONV_COLUMNS = (
    "id, openid, host_id, state, agent_id, queued_at, session_from, last_goods_id, updated_at"
)


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


async def list_for(pool: asyncpg.Pool, host_id: int) -> list[dict[str, Any]]:
    """The shop's agents (load, presence), by id."""
    rows = await pool.fetch(
        f"SELECT {AGENT_COLUMNS} FROM support_agents WHERE host_id = $1 ORDER BY id", host_id
    )
    return [dict(r) for r in rows]


async def get(pool: asyncpg.Pool | asyncpg.Connection, agent_id: int) -> dict[str, Any]:
    """One agent; NotFound (``agent_not_found``) when the account is gone."""
    row = await pool.fetchrow(f"SELECT {AGENT_COLUMNS} FROM support_agents WHERE id = $1", agent_id)
    if row is None:
        raise NotFound("no such agent", code="agent_not_found")
    return dict(row)


async def _agent(conn: asyncpg.Connection, agent_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"SELECT {AGENT_COLUMNS} FROM support_agents WHERE id = $1 FOR UPDATE", agent_id
    )
    if row is None:
        raise NotFound("no such agent", code="agent_not_found")
    return row


async def presence(
    pool: asyncpg.Pool, agent_id: int, online: bool, lease_seconds: float,
    version: int | None = None,
) -> tuple[dict[str, Any], list[int]]:  # fmt: skip
    """Renew (``online``) or end the agent's presence lease; going online assigns the shop's
    queued conversations up to the agent's capacity. The agent and the conversations assigned.

    ``version``: the password version of the session asking (the feed opening a socket); a
    newer password meanwhile is Unauthorized (``session_revoked``) and changes nothing."""
    async with pool.acquire() as conn, conn.transaction():
        agent = await _agent(conn, agent_id)
        if version is not None and agent["password_version"] != version:
            raise Unauthorized("the session ended: the password was changed",
                               code="session_revoked")  # fmt: skip
        row = await conn.fetchrow(
            f"""UPDATE support_agents SET online_until = CASE WHEN $2
                    THEN now() + make_interval(secs => $3) END
                WHERE id = $1 RETURNING {AGENT_COLUMNS}""",
            agent_id, online, lease_seconds,
        )  # fmt: skip
    moved: list[int] = []
    if online:
        async with pool.acquire() as conn, conn.transaction():
            moved = await assign(conn, row["host_id"])
        row = await pool.fetchrow(
            f"SELECT {AGENT_COLUMNS} FROM support_agents WHERE id = $1", agent_id
        )
    return dict(row), moved


async def renew(pool: asyncpg.Pool, agent_ids: list[int], lease_seconds: float) -> None:
    """Extend the leases of agents whose socket is open on this node (one statement)."""
    if agent_ids:
        await pool.execute(
            """UPDATE support_agents SET online_until = now() + make_interval(secs => $2)
               WHERE id = ANY($1::bigint[])""",
            agent_ids, lease_seconds,
        )  # fmt: skip


async def assign(conn: asyncpg.Connection, host_id: int, limit: int = 100) -> list[int]:
    """Give the shop's queued conversations (oldest first) to its least busy online agents with
    room; returns the ids assigned. Runs in the caller's transaction."""
    done: list[int] = []
    while len(done) < limit:
        conv = await conn.fetchrow(
            """SELECT id, openid FROM support_conversations
               WHERE state = 'queued' AND host_id = $1
               ORDER BY queued_at, id LIMIT 1 FOR UPDATE SKIP LOCKED""",
            host_id,
        )
        if conv is None:
            return done
        agent = await conn.fetchrow(
            """SELECT id FROM support_agents
               WHERE host_id = $1 AND online_until > now() AND active < capacity
               ORDER BY active::float8 / capacity, last_assigned_at NULLS FIRST, id
               LIMIT 1 FOR UPDATE SKIP LOCKED""",
            host_id,
        )
        if agent is None:
            return done
        await _take(conn, agent["id"])
        await move(conn, conv["openid"], "queued", "agent", "assigned", agent["id"])
        done.append(conv["id"])
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


async def _conversation(
    conn: asyncpg.Connection | asyncpg.Pool, conv_id: int, host_id: int, lock: bool = True
) -> asyncpg.Record:
    """The shop's conversation (locked); another shop's or an unscoped one is NotFound."""
    row = await conn.fetchrow(
        f"""SELECT {CONV_COLUMNS} FROM support_conversations WHERE id = $1 AND host_id = $2
            {"FOR UPDATE" if lock else ""}""",
        conv_id, host_id,
    )  # fmt: skip
    if row is None:
        raise NotFound("no such conversation", code="conversation_not_found")
    return row


async def conversation(pool: asyncpg.Pool, host_id: int, conv_id: int) -> dict[str, Any]:
    """One conversation of the shop (NotFound otherwise)."""
    return dict(await _conversation(pool, conv_id, host_id, lock=False))


async def queue(pool: asyncpg.Pool, host_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """The shop's queued conversations, oldest first."""
    rows = await pool.fetch(
        f"""SELECT {CONV_COLUMNS} FROM support_conversations
            WHERE state = 'queued' AND host_id = $1 ORDER BY queued_at, id LIMIT $2""",
        host_id, limit,
    )  # fmt: skip
    return [dict(r) for r in rows]


async def held_by(pool: asyncpg.Pool, agent_id: int) -> list[dict[str, Any]]:
    """The conversations the agent holds now, oldest hand-off first."""
    rows = await pool.fetch(
        f"""SELECT {CONV_COLUMNS} FROM support_conversations
            WHERE state = 'agent' AND agent_id = $1 ORDER BY updated_at, id""",
        agent_id,
    )
    return [dict(r) for r in rows]


async def claim(
    pool: asyncpg.Pool, agent_id: int, conv_id: int, lease_seconds: float
) -> dict[str, Any]:
    """The agent takes a queued conversation of their shop (404 another shop's; 409
    ``not_queued`` / ``agent_full``); claiming shows the agent is there (renews the lease)."""
    async with pool.acquire() as conn, conn.transaction():
        agent = await _agent(conn, agent_id)
        await conn.execute(
            """UPDATE support_agents SET online_until = GREATEST(online_until,
                   now() + make_interval(secs => $2)) WHERE id = $1""",
            agent_id, lease_seconds,
        )  # fmt: skip
        conv = await _conversation(conn, conv_id, agent["host_id"])
        if conv["state"] != "queued":
            raise Conflict(f"the conversation is {conv['state']}, not queued", code="not_queued")
        await _take(conn, agent_id)
        await move(conn, conv["openid"], "queued", "agent", "claimed", agent_id)
        return dict(await _conversation(conn, conv_id, agent["host_id"]))


async def _held(conn: asyncpg.Connection, agent_id: int, conv_id: int) -> asyncpg.Record:
    agent = await _agent(conn, agent_id)
    conv = await _conversation(conn, conv_id, agent["host_id"])
    if conv["state"] != "agent" or conv["agent_id"] != agent_id:
        raise Conflict("the conversation is not held by this agent", code="not_held")
    return conv


async def transfer(
    pool: asyncpg.Pool, agent_id: int, conv_id: int, to_agent: int
) -> dict[str, Any]:
    """Hand a held conversation to another online agent of the same shop (404 for an agent of
    another shop; 409 ``agent_offline`` / ``agent_full`` / ``not_held``)."""
    async with pool.acquire() as conn, conn.transaction():
        conv = await _held(conn, agent_id, conv_id)
        target = await conn.fetchrow(
            """SELECT id, online_until > now() AS online FROM support_agents
               WHERE id = $1 AND host_id = $2 FOR UPDATE""",
            to_agent, conv["host_id"],
        )  # fmt: skip
        if target is None:
            raise NotFound("no such agent in your shop", code="agent_not_found")
        if to_agent == agent_id or not target["online"]:
            raise Conflict("the target agent is not online (or is you)", code="agent_offline")
        await _take(conn, to_agent)
        await _release(conn, agent_id)
        await move(conn, conv["openid"], "agent", "agent", f"transfer from {agent_id}", to_agent)
        return dict(await _conversation(conn, conv_id, conv["host_id"]))


async def close(
    pool: asyncpg.Pool, agent_id: int, conv_id: int
) -> tuple[dict[str, Any], list[int]]:
    """End a held conversation; the agent's freed seat takes the shop's next queued one.
    The closed conversation and the ids assigned."""
    async with pool.acquire() as conn, conn.transaction():
        conv = await _held(conn, agent_id, conv_id)
        await _release(conn, agent_id)
        await move(conn, conv["openid"], "agent", "closed", "closed", None)
        result = dict(await _conversation(conn, conv_id, conv["host_id"]))
        return result, await assign(conn, conv["host_id"])


async def requeue_abandoned(pool: asyncpg.Pool, grace_seconds: float) -> dict[int, list[int]]:
    """Conversations whose agent's lease ended more than ``grace_seconds`` ago (or who signed
    out) go back to their shop's queue, then to another online agent of the shop.

    Returns ``{host_id: [conversation ids moved]}``."""
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
            """SELECT id, openid, agent_id, host_id FROM support_conversations
               WHERE state = 'agent' AND agent_id = ANY($1::bigint[])
               FOR UPDATE SKIP LOCKED""",
            [g["id"] for g in gone],
        )
        moved: dict[int, list[int]] = {}
        for r in rows:
            await _release(conn, r["agent_id"])
            await move(conn, r["openid"], "agent", "queued", "agent away")
            moved.setdefault(r["host_id"], []).append(r["id"])
        for host_id, ids in moved.items():
            ids.extend(await assign(conn, host_id))
        return moved


async def return_idle(
    pool: asyncpg.Pool, idle_seconds: float, limit: int = 500
) -> dict[int | None, list[int]]:
    """Conversations queued, with an agent or closed that saw no message (``last_message_at``)
    and no transition (``updated_at``) for ``idle_seconds`` go back to the bot (``idle``); an
    agent's seat is freed and takes the shop's next queued conversation. Exactly once across
    nodes: the rows are locked and the condition is checked again under the lock.

    Returns ``{host_id: [conversation ids moved or assigned]}`` (``None``: unscoped ones)."""
    cutoff = "now() - make_interval(secs => $1)"
    async with pool.acquire() as conn, conn.transaction():
        # Agents first, then their conversations: the same lock order as claim/close/transfer.
        holders = await conn.fetch(
            f"""SELECT DISTINCT agent_id FROM support_conversations
                WHERE state = 'agent' AND last_message_at < {cutoff} AND updated_at < {cutoff}
                LIMIT $2""",
            idle_seconds, limit,
        )  # fmt: skip
        locked = await conn.fetch(
            """SELECT id FROM support_agents WHERE id = ANY($1::bigint[])
               ORDER BY id FOR UPDATE SKIP LOCKED""",
            [h["agent_id"] for h in holders],
        )
        rows = await conn.fetch(
            f"""SELECT id, openid, state, agent_id, host_id FROM support_conversations
                WHERE state <> 'bot' AND last_message_at < {cutoff} AND updated_at < {cutoff}
                  AND (state <> 'agent' OR agent_id = ANY($2::bigint[]))
                ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED""",
            idle_seconds, [a["id"] for a in locked], limit,
        )  # fmt: skip
        moved: dict[int | None, list[int]] = {}
        for r in rows:
            if r["state"] == "agent":
                await _release(conn, r["agent_id"])
            await move(conn, r["openid"], r["state"], "bot", "idle")
            moved.setdefault(r["host_id"], []).append(r["id"])
        for host_id, ids in moved.items():
            if host_id is not None:
                ids.extend(await assign(conn, host_id))
        return moved


async def set_shop(
    pool: asyncpg.Pool, conv_id: int, host_id: int
) -> tuple[dict[str, Any], list[int]]:
    """The admin gives an unscoped conversation to a shop (404 no such conversation or host,
    409 ``already_scoped``); a queued one then goes to the shop's agents."""
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval("SELECT id FROM hosts WHERE id = $1", host_id) is None:
            raise NotFound("no such host", code="host_not_found")
        row = await conn.fetchrow(
            "SELECT host_id FROM support_conversations WHERE id = $1 FOR UPDATE", conv_id
        )
        if row is None:
            raise NotFound("no such conversation", code="conversation_not_found")
        if row["host_id"] is not None:
            raise Conflict("the conversation already has a shop", code="already_scoped")
        await conn.execute(
            "UPDATE support_conversations SET host_id = $2 WHERE id = $1", conv_id, host_id
        )
        assigned = await assign(conn, host_id)
        return dict(await _conversation(conn, conv_id, host_id)), assigned


async def unscoped(pool: asyncpg.Pool, limit: int = 100) -> list[dict[str, Any]]:
    """Queued conversations no shop could be derived for (the admin's queue), oldest first."""
    rows = await pool.fetch(
        f"""SELECT {CONV_COLUMNS} FROM support_conversations
            WHERE state = 'queued' AND host_id IS NULL ORDER BY queued_at, id LIMIT $1""",
        limit,
    )
    return [dict(r) for r in rows]
