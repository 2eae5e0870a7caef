"""Agent accounts: a host creates agents for their shop; an agent signs in with a login and a
password hashed exactly like a host's (:mod:`livecommerce.console.passwords`, scrypt, off the
event loop). No aiohttp here.

Logins are unique across all agents (``support_agents.login``); sign-in compares exactly and
costs the same whether the login exists or not. A new password moves the agent's
``password_version`` on (migration 0027), which ends the sessions signed in before it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from livecommerce.console.passwords import dummy_verify, hash_password, verify_password
from livecommerce.errors import Conflict, NotFound
from livecommerce.support import agents
from livecommerce.support.agents import AGENT_COLUMNS


async def create(
    pool: asyncpg.Pool, host_id: int, name: str, login: str, password: str, capacity: int
) -> dict[str, Any]:
    """A new agent of the host's shop (offline until they sign in). Conflict
    (``login_taken``) when another agent has the login."""
    hashed = await asyncio.to_thread(hash_password, password)
    row = await pool.fetchrow(
        f"""INSERT INTO support_agents (host_id, name, login, password_hash, capacity)
            VALUES ($1, $2, $3, $4, $5) ON CONFLICT (login) DO NOTHING
            RETURNING {AGENT_COLUMNS}""",
        host_id, name, login, hashed, capacity,
    )  # fmt: skip
    if row is None:
        raise Conflict(f"an agent with login {login!r} exists", code="login_taken")
    return dict(row)


async def update(
    pool: asyncpg.Pool, host_id: int, agent_id: int, *, name: str | None,
    capacity: int | None, password: str | None,
) -> dict[str, Any]:  # fmt: skip
    """Change an agent of the host's shop (NotFound for another shop's). A capacity below the
    conversations held now is a Conflict (``capacity_below_load``). A new password moves the
    agent's ``password_version`` on by one: every session signed in before ends (the caller
    tells the agent's open sockets; ``console/session_guard.py`` refuses the tokens)."""
    hashed = await asyncio.to_thread(hash_password, password) if password else None
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT active FROM support_agents WHERE id = $1 AND host_id = $2 FOR UPDATE",
            agent_id, host_id,
        )  # fmt: skip
        if row is None:
            raise NotFound("no such agent of yours", code="agent_not_found")
        if capacity is not None and capacity < row["active"]:
            raise Conflict(
                f"the agent holds {row['active']} conversations now", code="capacity_below_load"
            )
        updated = await conn.fetchrow(
            f"""UPDATE support_agents SET name = COALESCE($2, name),
                    capacity = COALESCE($3, capacity),
                    password_hash = COALESCE($4, password_hash),
                    password_version = password_version + CASE WHEN $4::text IS NULL
                                                              THEN 0 ELSE 1 END
                WHERE id = $1 RETURNING {AGENT_COLUMNS}""",
            agent_id, name, capacity, hashed,
        )  # fmt: skip
        return dict(updated)


async def delete(pool: asyncpg.Pool, host_id: int, agent_id: int) -> list[int]:
    """Delete an agent of the host's shop (NotFound for another shop's): the conversations they
    hold go back to the shop's queue (``agent deleted``, recorded) and on to its other online
    agents; their sessions stop working at once (every agent request and socket looks the
    account up; ids are never reused). Transitions keep the agent id for the audit trail.

    Returns the ids of the conversations moved (re-queued or assigned)."""
    async with pool.acquire() as conn, conn.transaction():
        # Agent first, then their conversations: the lock order of claim/close/transfer.
        row = await conn.fetchrow(
            "SELECT id FROM support_agents WHERE id = $1 AND host_id = $2 FOR UPDATE",
            agent_id, host_id,
        )  # fmt: skip
        if row is None:
            raise NotFound("no such agent of yours", code="agent_not_found")
        held = await conn.fetch(
            """SELECT id, openid FROM support_conversations
               WHERE state = 'agent' AND agent_id = $1 ORDER BY id FOR UPDATE""",
            agent_id,
        )
        for conv in held:
            await agents.move(conn, conv["openid"], "agent", "queued", "agent deleted")
        await conn.execute("DELETE FROM support_agents WHERE id = $1", agent_id)
        return [c["id"] for c in held] + await agents.assign(conn, host_id)


async def check_sign_in(pool: asyncpg.Pool, login: str, password: str) -> dict[str, Any] | None:
    """The agent whose login and password these are, else None (same cost either way)."""
    row = await pool.fetchrow(
        f"SELECT {AGENT_COLUMNS}, password_hash FROM support_agents WHERE login = $1", login
    )
    if row is None or row["password_hash"] is None:
        await asyncio.to_thread(dummy_verify, password)
        return None
    if not await asyncio.to_thread(verify_password, row["password_hash"], password):
        return None
    return dict(row)
