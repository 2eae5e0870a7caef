"""Which variant a user sees, and exposures recorded once (no aiohttp here).

The variant comes from :func:`bucketing.assign` over the user's openid (GrowthBook hash v2),
unless the experiment is sticky and the user already has a stored assignment: then the stored
one wins, so later weight or coverage changes do not move an exposed user. The stored
assignment is written at the first exposure.

An assignment is a dict ``{"experiment_id", "host_id", "key", "variant": int | None,
"variant_key": str | None, "sticky": bool}``; ``variant`` is None when the user is outside the
experiment (coverage or namespace). Keys are unique per host only: two hosts' experiments in one
list may share a key, told apart by ``experiment_id`` or ``(host_id, key)``.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from livecommerce.errors import Conflict, NotFound
from livecommerce.growth.experiments import service
from livecommerce.growth.experiments.bucketing import assign


def compute(exp: dict[str, Any], openid: str, stored: int | None = None) -> dict[str, Any]:
    """The assignment of ``openid`` in ``exp`` (an experiment dict); ``stored`` wins if sticky."""
    ns = exp["namespace"]
    if exp["sticky"] and stored is not None and stored < len(exp["variants"]):
        variant: int = stored
    else:
        variant = assign(
            openid,
            exp["seed"],
            exp["weights"],
            exp["coverage"],
            (ns["id"], ns["start"], ns["end"]) if ns else None,
        )
    inside = variant >= 0
    return {
        "experiment_id": exp["id"],
        "host_id": exp["host_id"],
        "key": exp["key"],
        "variant": variant if inside else None,
        "variant_key": exp["variants"][variant]["key"] if inside else None,
        "sticky": exp["sticky"],
    }


async def openid_of(pool: asyncpg.Pool, user_id: int) -> str:
    """The user's openid (the hash attribute). Raises NotFound for an unknown user."""
    openid: str | None = await pool.fetchval("SELECT openid FROM users WHERE id = $1", user_id)
    if openid is None:
        raise NotFound("no such user")
    return openid


async def host_of_room(pool: asyncpg.Pool, room_id: int) -> int:
    """The host of a live room. Raises NotFound for an unknown room."""
    host_id: int | None = await pool.fetchval(
        "SELECT host_id FROM live_rooms WHERE id = $1", room_id
    )
    if host_id is None:
        raise NotFound("no such room")
    return host_id


async def stored_for(pool: asyncpg.Pool, user_id: int) -> dict[int, int]:
    """The user's sticky assignments: experiment id → variant."""
    rows = await pool.fetch(
        "SELECT experiment_id, variant FROM experiment_assignments WHERE user_id = $1", user_id
    )
    return {r["experiment_id"]: r["variant"] for r in rows}


async def for_user(
    pool: asyncpg.Pool, user_id: int, host_id: int | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(assignments, experiments)``: the user's variant in every running experiment (only
    ``host_id``'s when given), and the running experiments themselves (for a client that
    buckets offline)."""
    openid = await openid_of(pool, user_id)
    running = await service.running(pool, host_id=host_id)
    stored = await stored_for(pool, user_id) if running else {}
    return [compute(e, openid, stored.get(e["id"])) for e in running], running


async def expose(pool: asyncpg.Pool, user_id: int, exp_id: int) -> tuple[dict[str, Any], bool]:
    """Record that the user was shown their variant of a running experiment.

    Once per (experiment, user, variant) by the exposures' primary key, so retries and
    duplicates (server render plus client impression) count once. A sticky experiment also
    stores the assignment, which then survives weight and coverage changes.

    Returns:
        (assignment, created): ``created`` is False when this exposure was already recorded
        or the user is outside the experiment (nothing recorded then).
    Raises:
        NotFound: no such experiment. Conflict ``not_running``: it is not running.
    """
    openid = await openid_of(pool, user_id)
    row = await pool.fetchrow("SELECT id, state FROM experiments WHERE id = $1", exp_id)
    if row is None:
        raise NotFound("no such experiment")
    if row["state"] != "running":
        raise Conflict("the experiment is not running", code="not_running")
    async with pool.acquire() as c, c.transaction():
        found = await service.running(c, only=exp_id)
        if not found:
            raise Conflict("the experiment is outside its window", code="not_running")
        stored = await c.fetchval(
            """SELECT variant FROM experiment_assignments
               WHERE user_id = $1 AND experiment_id = $2""",
            user_id,
            exp_id,
        )
        exp = found[0]
        a = compute(exp, openid, stored)
        if a["variant"] is None:
            return a, False
        if exp["sticky"]:
            await c.execute(
                """INSERT INTO experiment_assignments (experiment_id, user_id, variant)
                   VALUES ($1, $2, $3) ON CONFLICT DO NOTHING""",
                exp_id,
                user_id,
                a["variant"],
            )
        status = await c.execute(
            """INSERT INTO experiment_exposures (experiment_id, user_id, variant)
               VALUES ($1, $2, $3) ON CONFLICT DO NOTHING""",
            exp_id,
            user_id,
            a["variant"],
        )
    return a, status.endswith(" 1")
