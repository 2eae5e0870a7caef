"""Signing out ends one session on the server, on every node at once. No aiohttp here.

A console (host) or agent session's token carries ``sid``, a random id made at sign-in
(:func:`new_session_id`). Signing out records that id in ``revoked_sessions`` (migration 0025)
until the token's own expiry; ``console/session_guard.py`` looks the id up for every ``/api/``
request presenting the token (the same statement that reads the host's and the agent's
password versions: one round trip, primary-key lookups) and ``require_claims`` answers 401
``session_revoked``.
PostgreSQL is the record and answers every check: nothing is cached, so a sign-out counts on
every node at once and the check does not depend on Redis. Other sessions of the same host or
agent (other browsers, other devices) have other ids and stay signed in.

A row is useless once its token has expired: :func:`purge_expired` deletes those, run by every
node at start and then every :data:`PURGE_INTERVAL_SECONDS` (:func:`purge_forever`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime

import asyncpg

from livecommerce.aio import check_cancelled

log = logging.getLogger("livecommerce.auth.revocation")
PURGE_INTERVAL_SECONDS = 3600.0
PURGE_BATCH = 5000


def new_session_id() -> str:
    """A new session's id (128 random bits, 22 URL-safe characters)."""
    return secrets.token_urlsafe(16)


async def revoke(
    conn: asyncpg.Connection | asyncpg.Pool, session_id: str, kind: str, subject: str,
    expires_at: int,
) -> None:  # fmt: skip
    """Record the session ``session_id`` as signed out until ``expires_at`` (epoch seconds, its
    token's expiry); signing out twice is harmless."""
    await conn.execute(
        """INSERT INTO revoked_sessions (sid, kind, subject, expires_at)
           VALUES ($1, $2, $3, $4) ON CONFLICT (sid) DO NOTHING""",
        session_id, kind, subject, datetime.fromtimestamp(expires_at, UTC),
    )  # fmt: skip


async def purge_expired(conn: asyncpg.Connection | asyncpg.Pool, batch: int = PURGE_BATCH) -> int:
    """Delete the records of sessions whose tokens have expired (at most ``batch`` rows per
    statement, until none is left); how many were deleted. Safe on several nodes at once."""
    total = 0
    while True:
        done = await conn.fetchval(
            """WITH gone AS (
                   DELETE FROM revoked_sessions WHERE sid IN (
                       SELECT sid FROM revoked_sessions WHERE expires_at <= now()
                       LIMIT $1 FOR UPDATE SKIP LOCKED)
                   RETURNING 1)
               SELECT count(*) FROM gone""",
            batch,
        )
        total += int(done)
        if done < batch:
            return total


async def purge_forever(pool: asyncpg.Pool, interval: float = PURGE_INTERVAL_SECONDS) -> None:
    """:func:`purge_expired` now and then every ``interval`` seconds, until cancelled; a failure
    (a backend down) is logged and retried at the next interval."""
    while True:
        check_cancelled()
        try:
            purged = await purge_expired(pool)
            if purged:
                log.info("deleted %d expired session revocations", purged)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("purging expired session revocations failed (%s)", type(exc).__name__)
        await asyncio.sleep(interval)
