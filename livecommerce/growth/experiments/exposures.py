"""Exposures from the clients' ``bubble_impression`` events, batched off the fan-out path.

A viewer's client reports each bubble it showed as a ``bubble_impression`` event (socket
``track`` frame or ``POST /api/events``) with ``variants: {experiment key: variant key}``, the
``experiment`` of the frame it got. Keys are unique per host only (migration 0023), so a key is
read in the event's host: the host of its ``room_id``, else of its ``goods_id``; a key that
names no running experiment of that host (or an event with neither) records nothing. Once the
analytics writer has committed a batch of events (its ``on_stored`` hook: a few times a second,
never on the push), :meth:`ExposureRecorder.add` records an exposure for each logged-in user and
experiment in that batch: the variant is the
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
# analytics_events columns of a writer row (events.COLUMNS)
_TYPE, _USER, _ROOM, _GOODS, _VARIANTS = 1, 7, 8, 9, 14

Claim = tuple[int, int | None, int | None, str]  # (user, room, goods, experiment key)


class ExposureRecorder:
    """The writer's ``on_stored`` part for exposures (one per node)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.seen: set[tuple[int, int]] = set()
        self.recorded = 0
        self.mismatched = 0

    async def add(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Record the exposures of stored event ``rows`` (errors are logged, not raised)."""
        claims: dict[Claim, str] = {}
        for r in rows:
            if r[_TYPE] != "bubble_impression" or r[_USER] is None or not r[_VARIANTS]:
                continue
            if r[_ROOM] is None and r[_GOODS] is None:
                continue  # no host to read the keys in
            variants = r[_VARIANTS]
            if isinstance(variants, str):
                variants = orjson.loads(variants)
            for key, variant in variants.items():
                claims[(r[_USER], r[_ROOM], r[_GOODS], key)] = variant
        if not claims:
            return
        try:
            await self._record(claims)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("%d bubble exposures not recorded: %r", len(claims), exc)

    async def _hosts(self, raw: dict[Claim, str]) -> tuple[dict[int, int], dict[int, int]]:
        """(room → host, goods → host) for the rooms and goods of ``raw``, in one read."""
        rooms = sorted({r for _, r, _, _ in raw if r is not None})
        goods = sorted({g for _, _, g, _ in raw if g is not None})
        rows = await self.pool.fetch(
            """SELECT true AS room, id, host_id FROM live_rooms WHERE id = ANY($1::bigint[])
               UNION ALL
               SELECT false, id, host_id FROM goods
               WHERE id = ANY($2::bigint[]) AND host_id IS NOT NULL""",
            rooms,
            goods,
        )
        room_hosts = {r["id"]: r["host_id"] for r in rows if r["room"]}
        goods_hosts = {r["id"]: r["host_id"] for r in rows if not r["room"]}
        return room_hosts, goods_hosts

    async def _record(self, raw: dict[Claim, str]) -> None:
        keys = {k for _, _, _, k in raw}
        exps = {(e["host_id"], e["key"]): e for e in await service.running(self.pool)}
        if not any(k in keys for _, k in exps):
            return
        room_hosts, goods_hosts = await self._hosts(raw)
        by_id: dict[int, dict[str, Any]] = {}
        todo: dict[tuple[int, int], str] = {}  # (user, experiment id) → claimed variant key
        for (user, room, goods, key), variant in raw.items():
            # The room's host; the goods' only for an event without a known room.
            host = room_hosts.get(room) if room is not None else None
            if host is None and goods is not None:
                host = goods_hosts.get(goods)
            exp = exps.get((host, key)) if host is not None else None
            if exp is None or (exp["id"], user) in self.seen:
                continue
            by_id[exp["id"]] = exp
            todo[(user, exp["id"])] = variant
        if not todo:
            return
        users = sorted({u for u, _ in todo})
        ids = sorted({i for _, i in todo})
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
        for (user, exp_id), claimed in todo.items():
            exp, openid = by_id[exp_id], openids.get(user)
            if openid is None:
                continue
            a = compute(exp, openid, stored.get((user, exp_id)))
            if a["variant"] is None or a["variant_key"] != claimed:
                self.mismatched += 1
                continue
            exposures.append((exp_id, user, a["variant"]))
            if exp["sticky"]:
                sticky.append((exp_id, user, a["variant"]))
        if not exposures:
            return
        # In key order: two recordings at once (the writer counts flushes aside, several at a
        # time) then wait for each other's rows in one order, never in a deadlock cycle.
        exposures.sort()
        sticky.sort()
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
