"""Host accounts: create a host with a password, reset it, check a sign-in. No aiohttp here.

Passwords are hashed off the event loop (:mod:`livecommerce.console.passwords`). A name is
unique (``hosts.name``); sign-in compares names exactly.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

import asyncpg

from livecommerce.console.passwords import dummy_verify, hash_password, verify_password
from livecommerce.errors import Conflict, NotFound

# The demo host's console password, set by the development seed when it has none (printed by
# `make run`; development mode only).
DEMO_PASSWORD = "demo-live-2026"


# A host's password version: password_changed_at in microseconds since the epoch (0: none).
# A console session carries the version it was signed in with; a reset makes it stale.
PASSWORD_VERSION = "coalesce((extract(epoch FROM password_changed_at) * 1000000)::bigint, 0)"


@dataclass(frozen=True, slots=True)
class Host:
    id: int
    name: str
    password_version: int = 0


def new_password() -> str:
    """A random password for a new host or a reset (16 URL-safe characters, ~96 bits)."""
    return secrets.token_urlsafe(12)


async def create_host(conn: asyncpg.Connection | asyncpg.Pool, name: str, password: str) -> Host:
    """A new host with ``password``. Raises Conflict (``host_exists``) if the name is taken."""
    hashed = await asyncio.to_thread(hash_password, password)
    row = await conn.fetchrow(
        """INSERT INTO hosts (name, password_hash, password_changed_at) VALUES ($1, $2, now())
           ON CONFLICT (name) DO NOTHING RETURNING id, name""",
        name,
        hashed,
    )
    if row is None:
        raise Conflict(f"a host called {name!r} exists", code="host_exists")
    return Host(row["id"], row["name"])


async def set_password(
    conn: asyncpg.Connection | asyncpg.Pool,
    password: str,
    *,
    host_id: int | None = None,
    name: str | None = None,
) -> Host:
    """Set the password of the host with ``host_id`` (or ``name``). Raises NotFound."""
    hashed = await asyncio.to_thread(hash_password, password)
    row = await conn.fetchrow(
        """UPDATE hosts SET password_hash = $3, password_changed_at = now()
           WHERE id = $1 OR name = $2 RETURNING id, name""",
        host_id,
        name,
        hashed,
    )
    if row is None:
        raise NotFound("no such host", code="host_not_found")
    return Host(row["id"], row["name"])


async def ensure_password(conn: asyncpg.Connection, host_id: int, password: str) -> bool:
    """Give the host ``password`` unless it has one; True when set now (the demo seed)."""
    hashed = await asyncio.to_thread(hash_password, password)
    done = await conn.fetchval(
        """UPDATE hosts SET password_hash = $2, password_changed_at = now()
           WHERE id = $1 AND password_hash IS NULL RETURNING true""",
        host_id,
        hashed,
    )
    return bool(done)


async def check_sign_in(
    conn: asyncpg.Connection | asyncpg.Pool, name: str, password: str
) -> Host | None:
    """The host whose name and password these are, else None (same cost either way)."""
    row = await conn.fetchrow(
        f"SELECT id, name, password_hash, {PASSWORD_VERSION} AS pv FROM hosts WHERE name = $1",
        name,
    )
    if row is None or row["password_hash"] is None:
        await asyncio.to_thread(dummy_verify, password)
        return None
    if not await asyncio.to_thread(verify_password, row["password_hash"], password):
        return None
    return Host(row["id"], row["name"], row["pv"])


async def password_version(conn: asyncpg.Connection | asyncpg.Pool, host_id: int) -> int | None:
    """The host's current password version (None: no such host)."""
    pv: int | None = await conn.fetchval(
        f"SELECT {PASSWORD_VERSION} FROM hosts WHERE id = $1", host_id
    )
    return pv


async def host_name(conn: asyncpg.Connection | asyncpg.Pool, host_id: int) -> str | None:
    name: str | None = await conn.fetchval("SELECT name FROM hosts WHERE id = $1", host_id)
    return name
