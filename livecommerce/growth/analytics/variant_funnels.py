"""The per-bubble funnel broken down by variant, for pushes that A/B tested their creative.

A person (actor) belongs to the variant its ``bubble_impression`` / ``bubble_click`` events of
that push report in ``variants`` (``{experiment key: variant key}``, what the frame it got said;
docs/protocol.md): its first such event decides. Orders count for the variant of the user who
clicked (last-click attribution, reports.py). People whose events carry no variant are counted
in the push's totals only. Per variant there is no "viewers online", so ``viewers`` and
``impression_rate`` are null.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import orjson

VariantOf = dict[int, dict[str, dict[str, str]]]  # push seq → actor → its variants claim


async def actor_variants(
    conn: asyncpg.Connection, room_id: int, seqs: list[int], start: datetime, end: datetime
) -> VariantOf:
    """For pushes ``seqs`` of the room: each actor's first ``variants`` of those pushes."""
    if not seqs:
        return {}
    rows = await conn.fetch(
        """SELECT DISTINCT ON (push_seq, actor) push_seq, actor, variants
           FROM analytics_events
           WHERE room_id = $1 AND push_seq = ANY($2::bigint[]) AND occurred_at >= $3
             AND occurred_at < $4 AND variants IS NOT NULL
             AND type IN ('bubble_impression', 'bubble_click')
           ORDER BY push_seq, actor, occurred_at""",
        room_id,
        seqs,
        start,
        end,
    )
    out: VariantOf = {}
    for r in rows:
        v = r["variants"]
        out.setdefault(r["push_seq"], {})[r["actor"]] = orjson.loads(v) if isinstance(v, str) else v
    return out


def split(
    key: str,
    variant_keys: Any,
    claims: dict[str, dict[str, str]],
    people: tuple[dict[str, datetime], dict[str, datetime], set[str], list[asyncpg.Record]],
    pushed_at: datetime,
) -> list[dict[str, Any]]:
    """The funnel per variant of experiment ``key`` (variant order of the push)."""
    from livecommerce.growth.analytics.reports import funnel_counts  # (reports imports us)

    impressions, clicks, detailed, orders = people
    if isinstance(variant_keys, str):
        variant_keys = orjson.loads(variant_keys)
    of = {actor: c.get(key) for actor, c in claims.items()}
    rows = []
    for variant in variant_keys:
        counts = funnel_counts(
            {a: t for a, t in impressions.items() if of.get(a) == variant},
            {a: t for a, t in clicks.items() if of.get(a) == variant},
            {a for a in detailed if of.get(a) == variant},
            [o for o in orders if of.get(f"user:{o['user_id']}") == variant],
            pushed_at,
            None,
        )
        rows.append({"variant": variant, "viewers": None, **counts})
    return rows
