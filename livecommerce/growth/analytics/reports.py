"""Reports over ``analytics_events`` (SQL, aiohttp-free): per pushed bubble, per room, per goods
per day, and generic funnels. Times are UTC; money is fen; "people" are distinct actors
(``user:<id>`` or ``viewer:<anon>``).

Attribution (per bubble): an order (``order_placed``, server truth) belongs to the **last**
``bubble_click`` of the same goods by the same user within ``window`` before the order; orders
with no such click are unattributed. Its payment (``order_paid``) follows the order.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg

from livecommerce.errors import NotFound, ValidationError
from livecommerce.growth.analytics import variant_funnels
from livecommerce.growth.analytics.events import CLIENT_TYPES, CUSTOM, SERVER_TYPES

# The last bubble click (same user, same goods, within the window) before each order placed in
# [from, to) of the goods in $3. Uses the (goods_id, occurred_at) index.
_ATTRIBUTED = """
SELECT o.order_id, o.user_id, o.goods_id, o.occurred_at AS ordered_at, o.amount_fen,
       c.room_id, c.push_seq, c.occurred_at AS clicked_at,
       pd.occurred_at AS paid_at, pd.amount_fen AS paid_fen
FROM analytics_events o
JOIN LATERAL (
    SELECT c.room_id, c.push_seq, c.occurred_at FROM analytics_events c
    WHERE c.goods_id = o.goods_id AND c.type = 'bubble_click' AND c.actor = 'user:' || o.user_id
      AND c.occurred_at <= o.occurred_at AND c.occurred_at > o.occurred_at - $4::interval
    ORDER BY c.occurred_at DESC LIMIT 1
) c ON true
LEFT JOIN analytics_events pd ON pd.goods_id = o.goods_id AND pd.type = 'order_paid'
     AND pd.order_id = o.order_id AND pd.occurred_at >= o.occurred_at
WHERE o.goods_id = ANY($3::bigint[]) AND o.type = 'order_placed'
  AND o.occurred_at >= $1 AND o.occurred_at < $2
"""


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


async def attributed_orders(
    conn: asyncpg.Connection, goods: list[int], start: datetime, end: datetime, window: timedelta
) -> list[asyncpg.Record]:
    """Orders placed in [start, end) of ``goods`` with the bubble click they are attributed to."""
    rows: list[asyncpg.Record] = await conn.fetch(_ATTRIBUTED, start, end, goods, window)
    return rows


async def push_funnels(
    conn: asyncpg.Connection, room_id: int, start: datetime, end: datetime, window: timedelta
) -> list[dict[str, Any]]:
    """One funnel per bubble pushed in the room in [start, end): viewers online at push →
    impressions → clicks → detail views → orders → paid (people; orders by attribution),
    step rates, GMV (paid, fen), median seconds push→click and push→order, lateness.

    A push that A/B tested its creative (docs/experiments.md) also has ``experiment`` (its key)
    and ``by_variant``: the same funnel per variant, a person counted in the variant its
    impression or click events report (``variants``); see :mod:`.variant_funnels`."""
    pushes = await conn.fetch(
        """SELECT push_seq, goods_id, occurred_at,
                  coalesce((props->>'viewers_online')::int, 0) AS viewers,
                  (props->>'lateness_ms')::int AS lateness_ms,
                  props->>'experiment' AS experiment, props->'variants' AS variant_keys
           FROM analytics_events
           WHERE room_id = $1 AND type = 'push_published' AND occurred_at >= $2
             AND occurred_at < $3
           ORDER BY occurred_at""",
        room_id,
        start,
        end,
    )
    if not pushes:
        return []
    horizon = end + window
    steps = await conn.fetch(
        """SELECT push_seq, type, actor, min(occurred_at) AS first_at FROM analytics_events
           WHERE room_id = $1 AND occurred_at >= $2 AND occurred_at < $3
             AND type IN ('bubble_impression', 'bubble_click') AND push_seq IS NOT NULL
           GROUP BY push_seq, type, actor""",
        room_id,
        start,
        horizon,
    )
    goods = sorted({p["goods_id"] for p in pushes if p["goods_id"] is not None})
    details = await conn.fetch(
        """SELECT goods_id, actor, occurred_at FROM analytics_events
           WHERE goods_id = ANY($1::bigint[]) AND type = 'goods_detail_view'
             AND occurred_at >= $2 AND occurred_at < $3""",
        goods,
        start,
        horizon,
    )
    orders = await attributed_orders(conn, goods, start, horizon, window)
    tested = [p["push_seq"] for p in pushes if p["experiment"] is not None]
    variant_of = await variant_funnels.actor_variants(conn, room_id, tested, start, horizon)
    by_push: dict[int, dict[str, dict[str, datetime]]] = {}
    for s in steps:
        by_push.setdefault(s["push_seq"], {}).setdefault(s["type"], {})[s["actor"]] = s["first_at"]
    detail_times: dict[tuple[int, str], list[datetime]] = {}
    for d in details:
        detail_times.setdefault((d["goods_id"], d["actor"]), []).append(d["occurred_at"])
    out = []
    for p in pushes:
        seq, pushed_at = p["push_seq"], p["occurred_at"]
        seen = by_push.get(seq, {})
        impressions = seen.get("bubble_impression", {})
        clicks = seen.get("bubble_click", {})
        detailed = {
            actor
            for actor, at in clicks.items()
            if any(at <= t < at + window for t in detail_times.get((p["goods_id"], actor), ()))
        }
        mine = [o for o in orders if o["room_id"] == room_id and o["push_seq"] == seq]
        row = {
            "push_seq": seq,
            "goods_id": p["goods_id"],
            "pushed_at": pushed_at,
            "lateness_ms": p["lateness_ms"],
            "viewers": p["viewers"],
            **funnel_counts(impressions, clicks, detailed, mine, pushed_at, p["viewers"]),
            "experiment": p["experiment"],
        }
        if p["experiment"] is not None:
            row["by_variant"] = variant_funnels.split(
                p["experiment"], p["variant_keys"] or [], variant_of.get(seq, {}),
                (impressions, clicks, detailed, mine), pushed_at,
            )  # fmt: skip
        out.append(row)
    return out


def funnel_counts(
    impressions: dict[str, datetime],
    clicks: dict[str, datetime],
    detailed: set[str],
    mine: list[asyncpg.Record],
    pushed_at: datetime,
    viewers: int | None,
) -> dict[str, Any]:
    """The funnel's counts, rates and medians for these people (actors) of one push."""
    paid = [o for o in mine if o["paid_at"] is not None]
    return {
        "impressions": len(impressions),
        "clicks": len(clicks),
        "detail_views": len(detailed),
        "orders": len(mine),
        "paid_orders": len(paid),
        "gmv_fen": sum(o["paid_fen"] or 0 for o in paid),
        "impression_rate": _rate(len(impressions), viewers) if viewers is not None else None,
        "click_rate": _rate(len(clicks), len(impressions)),
        "detail_rate": _rate(len(detailed), len(clicks)),
        "order_rate": _rate(len(mine), len(clicks)),
        "pay_rate": _rate(len(paid), len(mine)),
        "median_click_seconds": _median([(t - pushed_at).total_seconds() for t in clicks.values()]),
        "median_order_seconds": _median(
            [(o["ordered_at"] - pushed_at).total_seconds() for o in mine]
        ),
    }


async def room_report(
    conn: asyncpg.Connection, room_id: int, start: datetime, end: datetime, window: timedelta
) -> dict[str, Any]:
    """Per room in [start, end): viewer curve per minute (the room's ``room_minute`` samples:
    viewers online, likes and comments during the minute), GMV and paid buyers of the orders
    attributed to the room's bubbles, GPM (GMV per 1,000 peak viewers), and the goods by
    click-through (clicks / impressions)."""
    samples = await conn.fetch(
        """SELECT date_trunc('minute', occurred_at) AS minute,
                  coalesce((props->>'viewers')::int, 0) AS viewers,
                  coalesce((props->>'likes_total')::bigint, 0) AS likes_total,
                  coalesce((props->>'comments_total')::bigint, 0) AS comments_total
           FROM analytics_events
           WHERE room_id = $1 AND type = 'room_minute' AND occurred_at >= $2
             AND occurred_at < $3
           ORDER BY occurred_at""",
        room_id,
        start,
        end,
    )
    minutes = []
    prev_likes = prev_comments = None
    for m in samples:
        minutes.append(
            {
                "minute": m["minute"],
                "viewers": m["viewers"],
                # Totals are cumulative counters: per minute is the difference (first: 0).
                "likes": max(0, m["likes_total"] - prev_likes) if prev_likes is not None else 0,
                "comments": (
                    max(0, m["comments_total"] - prev_comments) if prev_comments is not None else 0
                ),
            }
        )
        prev_likes, prev_comments = m["likes_total"], m["comments_total"]
    goods_rows = await conn.fetch(
        """SELECT goods_id,
                  count(DISTINCT actor) FILTER (WHERE type IN ('bubble_impression',
                                                               'goods_impression'))
                      AS impressions,
                  count(DISTINCT actor) FILTER (WHERE type = 'bubble_click') AS clicks
           FROM analytics_events
           WHERE room_id = $1 AND occurred_at >= $2 AND occurred_at < $3
             AND goods_id IS NOT NULL
             AND type IN ('bubble_impression', 'goods_impression', 'bubble_click')
           GROUP BY goods_id""",
        room_id,
        start,
        end,
    )
    pushed_goods = await conn.fetch(
        """SELECT DISTINCT goods_id FROM analytics_events
           WHERE room_id = $1 AND type = 'push_published' AND occurred_at >= $2
             AND occurred_at < $3 AND goods_id IS NOT NULL""",
        room_id,
        start,
        end,
    )
    goods = sorted({r["goods_id"] for r in goods_rows} | {r["goods_id"] for r in pushed_goods})
    orders = [
        o
        for o in await attributed_orders(conn, goods, start, end + window, window)
        if o["room_id"] == room_id
    ]
    paid = [o for o in orders if o["paid_at"] is not None]
    gmv = sum(o["paid_fen"] or 0 for o in paid)
    peak = max((m["viewers"] or 0 for m in minutes), default=0)
    top = sorted(
        (
            {
                "goods_id": g["goods_id"],
                "impressions": g["impressions"],
                "clicks": g["clicks"],
                "click_rate": _rate(g["clicks"], g["impressions"]),
            }
            for g in goods_rows
        ),
        key=lambda g: (-(g["click_rate"] or 0), -g["clicks"], g["goods_id"]),
    )
    return {
        "room_id": room_id,
        "minutes": minutes,
        "peak_viewers": peak,
        "orders": len(orders),
        "paid_orders": len(paid),
        "paid_buyers": len({o["user_id"] for o in paid}),
        "gmv_fen": gmv,
        "gpm_fen": round(gmv * 1000 / peak, 2) if peak else None,
        "top_goods": top[:20],
    }


async def goods_daily(
    conn: asyncpg.Connection, goods: list[int], start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Per goods per UTC day: impressions (people), detail views, clicks, orders, paid orders,
    click-through (clicks / impressions) and conversion (paid orders / impressions)."""
    rows = await conn.fetch(
        """SELECT goods_id, (occurred_at AT TIME ZONE 'UTC')::date AS day,
                  count(DISTINCT actor) FILTER (WHERE type IN ('goods_impression',
                                                               'bubble_impression'))
                      AS impressions,
                  count(DISTINCT actor) FILTER (WHERE type = 'bubble_click') AS clicks,
                  count(DISTINCT actor) FILTER (WHERE type = 'goods_detail_view')
                      AS detail_views,
                  count(*) FILTER (WHERE type = 'order_placed') AS orders,
                  count(*) FILTER (WHERE type = 'order_paid') AS paid_orders,
                  coalesce(sum(amount_fen) FILTER (WHERE type = 'order_paid'), 0)::bigint AS gmv_fen
           FROM analytics_events
           WHERE goods_id = ANY($1::bigint[]) AND occurred_at >= $2 AND occurred_at < $3
           GROUP BY 1, 2 ORDER BY 2, 1""",
        goods,
        start,
        end,
    )
    return [
        {
            **dict(r),
            "click_rate": _rate(r["clicks"], r["impressions"]),
            "conversion_rate": _rate(r["paid_orders"], r["impressions"]),
        }
        for r in rows
    ]


BREAKDOWNS = {"room": "room_id", "goods": "goods_id", "variant": "variants"}


def check_steps(steps: list[str]) -> None:
    """Funnel steps: 2..8 known event types (ValidationError ``steps`` otherwise)."""
    if not 2 <= len(steps) <= 8:
        raise ValidationError("steps", "a funnel has 2 to 8 steps")
    for s in steps:
        if s not in CLIENT_TYPES and s not in SERVER_TYPES and not CUSTOM.match(s):
            raise ValidationError("steps", f"unknown event type {s!r}")


async def funnel(
    conn: asyncpg.Connection,
    steps: list[str],
    *,
    start: datetime,
    end: datetime,
    window: timedelta,
    room_id: int | None,
    goods: list[int] | None,
    breakdown: str | None,
    experiment: str | None = None,
) -> list[dict[str, Any]]:
    """An ordered funnel of people: step k counts actors who did steps 1..k in order, each
    within ``window`` of their first step 1 in [start, end). Other events between steps are
    allowed. ``breakdown`` (room | goods | variant of ``experiment``) splits by the value on
    the actor's step-1 event. Scoped to ``room_id`` (its events, and the room-less ones of
    ``goods``, the goods on its shelf: the server's order events have no room) or to
    ``goods``; returns one row per breakdown value: ``{value, counts: [...], rates: [...]}``."""
    args: list[Any] = [goods or []]
    if room_id is not None:
        scope = "(room_id = $5 OR (room_id IS NULL AND goods_id = ANY($4::bigint[])))"
        args.append(room_id)
    else:
        scope = "goods_id = ANY($4::bigint[])"
    if breakdown == "variant":
        key = f"coalesce(variants->>${len(args) + 4}, '(none)')"
        args.append(experiment or "")
    elif breakdown is not None:
        key = f"coalesce({BREAKDOWNS[breakdown]}::text, '(none)')"
    else:
        key = "'all'"
    rows = await conn.fetch(
        f"""SELECT actor, type, occurred_at, {key} AS value FROM analytics_events
            WHERE {scope} AND type = ANY($1::text[]) AND occurred_at >= $2 AND occurred_at < $3
            ORDER BY actor, occurred_at""",
        steps,
        start,
        end + window,
        *args,
    )
    per_value: dict[str, list[int]] = {}
    actor_rows: dict[str, list[asyncpg.Record]] = {}
    for r in rows:
        actor_rows.setdefault(r["actor"], []).append(r)
    for evs in actor_rows.values():
        firsts = [i for i, e in enumerate(evs) if e["type"] == steps[0] and e["occurred_at"] < end]
        if not firsts:
            continue
        first = evs[firsts[0]]
        deadline = first["occurred_at"] + window
        # Each step is another event than the steps before (a repeated step, page_view twice,
        # needs two page views); events at the same time may come in either order.
        reached, t, used = 1, first["occurred_at"], {firsts[0]}
        for step in steps[1:]:
            nxt = next(
                (
                    i
                    for i, e in enumerate(evs)
                    if e["type"] == step and t <= e["occurred_at"] < deadline and i not in used
                ),
                None,
            )
            if nxt is None:
                break
            reached, t = reached + 1, evs[nxt]["occurred_at"]
            used.add(nxt)
        counts = per_value.setdefault(first["value"], [0] * len(steps))
        for i in range(reached):
            counts[i] += 1
    return [
        {
            "value": value,
            "counts": counts,
            "rates": [_rate(counts[i], counts[i - 1]) if i else 1.0 for i in range(len(counts))],
        }
        for value, counts in sorted(per_value.items())
    ]


async def host_room(conn: asyncpg.Connection, host_id: int, room_id: int) -> None:
    """NotFound unless ``room_id`` is the host's (reports are the room owner's only)."""
    owner = await conn.fetchval("SELECT host_id FROM live_rooms WHERE id = $1", room_id)
    if owner != host_id:
        raise NotFound("no such room", code="room_not_found")


async def host_goods(conn: asyncpg.Connection, host_id: int) -> list[int]:
    return [r["id"] for r in await conn.fetch("SELECT id FROM goods WHERE host_id = $1", host_id)]
