"""Exposures from the clients' ``bubble_impression`` events, batched off the fan-out path.

A viewer's client reports each bubble it showed as a ``bubble_impression`` event (socket
``track`` frame or ``POST /api/events``) with ``variants: {experiment key: variant key}``, the
``experiment`` of the frame it got. Once the analytics writer has committed a batch of events
(its ``on_stored`` hook: a few times a second, never on the push), :meth:`ExposureRecorder.add`
records an exposure for each logged-in user and experiment in that batch: the variant is the
user's assignment computed here (sticky assignment, else GrowthBook hash of the openid), and is
recorded only when it equals the variant the client reports (a forged or stale claim is counted
in ``mismatched`` and dropped). Sticky experiments also store the assignment, as
``POST /api/experiments/{id}/exposures`` does. Each (experiment, user, variant) is stored once
(the primary key) and a node remembers what it recorded, so repeated impressions cost nothing.
Anonymous viewers record no exposure: results count users.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from livecommerce.growth.experiments import service
from livecommerce.growth.experiments.assignments import compute

log = logging.getLogger("livecommerce.experiments")
SEEN_MAX = 200_000  # (experiment, user) pairs a node remembers as recorded
_TYPE, _USER, _VARIANTS = 1, 7, 14  # analytics_events columns of a writer row (events.COLUMNS)


class ExposureRecorder:
    """The writer's ``on_stored`` part for exposures (one per node)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.seen: set[tuple[int, int]] = set()
        self.recorded = 0
        self.mismatched = 0

    async def add(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Record the exposures of stored event ``rows`` (errors are logged, not raised)."""
        claims: dict[tuple[int, str], str] = {}
        for r in rows:
            if r[_TYPE] != "bubble_impression" or r[_USER] is None or not r[_VARIANTS]:
                continue
            variants = r[_VARIANTS]
            if isinstance(variants, str):
                variants = orjson.loads(variants)
            for key, variant in variants.items():
                claims[(r[_USER], key)] = variant
        if not claims:
            return
        try:
            await self._record(claims)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("%d bubble exposures not recorded: %r", len(claims), exc)

    async def _record(self, claims: dict[tuple[int, str], str]) -> None:
        keys = {k for _, k in claims}
        exps = {e["key"]: e for e in await service.running(self.pool) if e["key"] in keys}
        todo = {
            (u, k): v
            for (u, k), v in claims.items()
            if k in exps and (exps[k]["id"], u) not in self.seen
        }
        if not todo:
            return
        users = sorted({u for u, _ in todo})
        ids = sorted({exps[k]["id"] for _, k in todo})
        openids = {
            r["id"]: r["openid"]
            for r in await self.pool.fetch(
                "SELECT id, openid FROM users WHERE id = ANY($1::bigint[])", users
            )
        }
        stored = {
            (r["user_id"], r["experiment_id"]): r["variant"]
            for r in await self.pool.fetch(
                """SELECT user_id, experiment_id, variant FROM experiment_assignments
                   WHERE user_id = ANY($1::bigint[]) AND experiment_id = ANY($2::bigint[])""",
                users,
                ids,
            )
        }
        exposures: list[tuple[int, int, int]] = []
        sticky: list[tuple[int, int, int]] = []
        for (user, key), claimed in todo.items():
            exp, openid = exps[key], openids.get(user)
            if openid is None:
                continue
            a = compute(exp, openid, stored.get((user, exp["id"])))
            if a["variant"] is None or a["variant_key"] != claimed:
                self.mismatched += 1
                continue
            exposures.append((exp["id"], user, a["variant"]))
            if exp["sticky"]:
                sticky.append((exp["id"], user, a["variant"]))
        if not exposures:
            return
        async with self.pool.acquire() as c, c.transaction():
            if sticky:
                await c.executemany(
                    """INSERT INTO experiment_assignments (experiment_id, user_id, variant)
                       VALUES ($1, $2, $3) ON CONFLICT DO NOTHING""",
                    sticky,
                )
            await c.executemany(
                """INSERT INTO experiment_exposures (experiment_id, user_id, variant)
                   VALUES ($1, $2, $3) ON CONFLICT DO NOTHING""",
                exposures,
            )
        self.recorded += len(exposures)
        if len(self.seen) > SEEN_MAX:
            self.seen.clear()
        self.seen.update((e, u) for e, u, _ in exposures)
