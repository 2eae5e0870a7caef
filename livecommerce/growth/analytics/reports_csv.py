"""HTTP: the analytics reports for the room's host as CSV (same data as the JSON, one table).

Each export answers the query of its JSON report (:mod:`.reports_api`). Its columns are fixed
by the report (the fields of its typed model, in order; the funnel's by its steps), so a report
with no rows is still its header line.
"""

from __future__ import annotations

import csv
import io
import time
from datetime import date, datetime
from typing import Any

import msgspec
from aiohttp import web

from livecommerce.api.contract import decode_query, path_ids
from livecommerce.auth.http import require_claims
from livecommerce.growth.analytics import reports_api
from livecommerce.growth.analytics.reports_api import FunnelQuery, Span


def _fields(model: type[msgspec.Struct]) -> list[str]:
    return [f.name for f in msgspec.structs.fields(model)]


# One row per push (`variant` empty), then one per variant of a tested push.
PUSH_COLUMNS = [*(c for c in _fields(reports_api.PushFunnel) if c != "by_variant"), "variant"]
# The report's figures, repeated on every minute (all of the JSON but `top_goods`, a table).
ROOM_TOTALS = ("gmv_fen", "gpm_fen", "paid_buyers", "paid_orders", "orders", "peak_viewers")
ROOM_COLUMNS = [*_fields(reports_api.Minute), *ROOM_TOTALS]
GOODS_COLUMNS = _fields(reports_api.GoodsDay)


def _csv(rows: list[dict[str, Any]], columns: list[str], name: str) -> web.Response:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns)
    w.writeheader()  # without rows too: a spreadsheet still shows what the columns are
    for r in rows:
        w.writerow({k: _cell(v) for k, v in r.items()})
    return web.Response(
        body=buf.getvalue().encode("utf-8-sig"),  # the BOM makes Excel read UTF-8 (as orders.csv)
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}-{int(time.time())}.csv"'},
    )


# A cell starting with one of these is a formula to Excel, LibreOffice or Sheets (OWASP "CSV
# Injection"): text from clients (a variant name in `variants`) must not run on the host's PC.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(v: Any) -> Any:
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, list | dict):
        return msgspec.json.encode(v).decode()
    if isinstance(v, str) and v.startswith(_FORMULA_START):
        return "'" + v  # shown as text; numbers are written as numbers, never prefixed
    return "" if v is None else v


async def pushes_csv(request: web.Request) -> web.StreamResponse:
    """The per-bubble funnels as CSV (one row per push, then one per variant of a tested
    push)."""
    claims = require_claims(request, "host")
    room_id = path_ids(request, ("id",))["id"]
    span = decode_query(request, Span)
    rows = await reports_api.push_rows(request, int(claims.subject), room_id, span)
    return _csv(flat_pushes(rows), PUSH_COLUMNS, f"room-{room_id}-pushes")


def flat_pushes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One CSV row per push (``variant`` empty) followed by one per variant of a tested push
    (the push's columns, the variant's counts)."""
    out = []
    for r in rows:
        base = {k: v for k, v in r.items() if k != "by_variant"}
        out.append({**base, "variant": ""})
        for v in r.get("by_variant") or []:
            out.append({**base, **v, "variant": v["variant"]})
    return out


async def room_csv(request: web.Request) -> web.StreamResponse:
    """The room's per-minute curve as CSV, with the totals repeated on every row."""
    claims = require_claims(request, "host")
    room_id = path_ids(request, ("id",))["id"]
    span = decode_query(request, Span)
    out = await reports_api.room_data(request, int(claims.subject), room_id, span)
    totals = {k: out[k] for k in ROOM_TOTALS}
    return _csv([{**m, **totals} for m in out["minutes"]], ROOM_COLUMNS, f"room-{room_id}")


async def goods_csv(request: web.Request) -> web.StreamResponse:
    """The goods-per-day report as CSV."""
    claims = require_claims(request, "host")
    span = decode_query(request, Span)
    rows = await reports_api.goods_rows(request, int(claims.subject), span)
    return _csv(rows, GOODS_COLUMNS, "goods-daily")


async def funnel_csv(request: web.Request) -> web.StreamResponse:
    """A funnel as CSV: one row per breakdown value, one column per step."""
    claims = require_claims(request, "host")
    q = decode_query(request, FunnelQuery)
    steps, rows = await reports_api.funnel_rows(request, int(claims.subject), q)
    columns = step_columns(steps)
    flat = [{"value": r["value"], **dict(zip(columns, r["counts"], strict=True))} for r in rows]
    return _csv(flat, ["value", *columns], "funnel")


def step_columns(steps: list[str]) -> list[str]:
    """The funnel CSV's step columns: the event type, ``#n`` on its n-th repeat (``#`` is in no
    event type), so a repeated step keeps its own column."""
    seen: dict[str, int] = {}
    out = []
    for s in steps:
        seen[s] = seen.get(s, 0) + 1
        out.append(s if seen[s] == 1 else f"{s}#{seen[s]}")
    return out
