"""Experiment definitions in PostgreSQL: create, update, start, stop, read (no aiohttp here).

An experiment belongs to the host that created it; its key is unique among that host's
experiments only (migration 0023), so a key names an experiment only together with a host.
Its lifecycle is draft → running → stopped.
Weights and coverage may change while it runs; every creation, change and state move is
appended to ``experiment_changes`` with the weights and coverage in force from then on.

Rows come back as plain dicts (the API converts them to its response models):
``{"id", "host_id", "key", "description", "variants": [{"key", "name"}], "weights",
"coverage", "seed", "namespace": {"id", "start", "end"} | None, "starts_at", "ends_at",
"primary_metric", "guardrail_metrics", "sticky", "state", "started_at", "stopped_at",
"created_at", "updated_at"}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from livecommerce.errors import Conflict, NotFound, ValidationError

METRICS = {
    # name: (binomial?, description)
    "paid_conversion": (
        True,
        "Share of exposed users with a paid order of the host after exposure",
    ),
    "gmv_fen": (False, "Paid GMV per exposed user after exposure, in fen"),
    "paid_orders": (False, "Paid orders per exposed user after exposure"),
}

_COLUMNS = """id, host_id, key, description, variants, weights, coverage, seed, namespace_id,
    namespace_start, namespace_end, starts_at, ends_at, primary_metric, guardrail_metrics,
    sticky, state, started_at, stopped_at, created_at, updated_at"""
COLUMNS = _COLUMNS  # for modules that read experiments (bubble_push.py)


def row_to_dict(row: asyncpg.Record) -> dict[str, Any]:
    """An ``experiments`` row as the documented dict."""
    d = dict(row)
    d["variants"] = list(d["variants"])
    d["weights"] = list(d["weights"])
    d["guardrail_metrics"] = list(d["guardrail_metrics"])
    ns_id, start, end = d.pop("namespace_id"), d.pop("namespace_start"), d.pop("namespace_end")
    d["namespace"] = None if ns_id is None else {"id": ns_id, "start": start, "end": end}
    return d


def check_weights(weights: list[float], n_variants: int) -> None:
    """400 on ``weights`` unless there is one per variant, each > 0, summing to 1 (± 1e-6)."""
    if len(weights) != n_variants:
        raise ValidationError("weights", "must have one weight per variant")
    if any(w <= 0 for w in weights) or abs(sum(weights) - 1) > 1e-6:
        raise ValidationError("weights", "must be positive and sum to 1")


async def create(pool: asyncpg.Pool, host_id: int, spec: dict[str, Any]) -> dict[str, Any]:
    """Create a draft experiment from ``spec`` (the create body as a dict).

    Raises:
        ValidationError: weights that do not fit the variants.
        Conflict: ``key_taken`` when the host already has an experiment with this key (other
            hosts' keys are never in the way: keys are unique per host).
    """
    variants = spec["variants"]
    weights = spec.get("weights") or [1 / len(variants)] * len(variants)
    check_weights(weights, len(variants))
    ns = spec.get("namespace")
    async with pool.acquire() as c, c.transaction():
        try:
            row = await c.fetchrow(
                f"""INSERT INTO experiments (host_id, key, description, variants, weights, coverage,
                       seed, namespace_id, namespace_start, namespace_end, starts_at, ends_at,
                       primary_metric, guardrail_metrics, sticky)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                    RETURNING {_COLUMNS}""",
                host_id,
                spec["key"],
                spec.get("description", ""),
                variants,
                weights,
                spec.get("coverage", 1.0),
                spec.get("seed") or spec["key"],
                ns["id"] if ns else None,
                ns["start"] if ns else None,
                ns["end"] if ns else None,
                spec.get("starts_at"),
                spec.get("ends_at"),
                spec["primary_metric"],
                list(spec.get("guardrail_metrics", [])),
                spec.get("sticky", True),
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(
                "you already have an experiment with this key", code="key_taken"
            ) from None
        assert row is not None
        await _record(c, row["id"], "created")
    return row_to_dict(row)


async def update(
    pool: asyncpg.Pool, host_id: int, exp_id: int, changes: dict[str, Any]
) -> dict[str, Any]:
    """Apply ``changes`` (fields of the update body that were sent) to the host's experiment.

    Variants, key and seed can change only in a draft; weights, coverage, window, metrics,
    description, namespace and stickiness also while running. A stopped experiment is frozen.

    Raises:
        NotFound: no such experiment of this host.
        Conflict: ``experiment_stopped`` / ``not_a_draft`` for a change the state forbids.
        ValidationError: weights that do not fit the variants; a window (the changed bounds
            with the stored ones) that ends before it starts.
    """
    async with pool.acquire() as c, c.transaction():
        cur = await _locked(c, host_id, exp_id)
        if cur["state"] == "stopped":
            raise Conflict("a stopped experiment cannot change", code="experiment_stopped")
        if cur["state"] != "draft" and "variants" in changes:
            raise Conflict("variants can change only in a draft", code="not_a_draft")
        variants = changes.get("variants", cur["variants"])
        weights = changes.get("weights")
        if weights is None:
            weights = (
                cur["weights"] if "variants" not in changes else [1 / len(variants)] * len(variants)
            )
        check_weights(weights, len(variants))
        ns = changes["namespace"] if "namespace" in changes else cur["namespace"]
        new = {**cur, **changes, "variants": variants, "weights": weights, "namespace": ns}
        starts, ends = new["starts_at"], new["ends_at"]
        if starts is not None and ends is not None and ends <= starts:
            raise ValidationError("ends_at", "must be after starts_at")
        row = await c.fetchrow(
            f"""UPDATE experiments SET description = $2, variants = $3, weights = $4,
                   coverage = $5, namespace_id = $6, namespace_start = $7, namespace_end = $8,
                   starts_at = $9, ends_at = $10, primary_metric = $11, guardrail_metrics = $12,
                   sticky = $13, updated_at = now()
                WHERE id = $1 RETURNING {_COLUMNS}""",
            exp_id,
            new["description"],
            variants,
            weights,
            new["coverage"],
            ns["id"] if ns else None,
            ns["start"] if ns else None,
            ns["end"] if ns else None,
            new["starts_at"],
            new["ends_at"],
            new["primary_metric"],
            list(new["guardrail_metrics"]),
            new["sticky"],
        )
        assert row is not None
        if list(row["weights"]) != cur["weights"] or row["coverage"] != cur["coverage"]:
            await _record(c, exp_id, "updated")
    return row_to_dict(row)


async def set_state(pool: asyncpg.Pool, host_id: int, exp_id: int, to_state: str) -> dict[str, Any]:
    """Start (draft → running) or stop (running → stopped) the host's experiment.

    Raises:
        NotFound: no such experiment of this host.
        Conflict: ``bad_state`` when the experiment is not in the state the move starts from.
    """
    start = to_state == "running"
    frm = "draft" if start else "running"
    stamp = "started_at" if start else "stopped_at"
    async with pool.acquire() as c, c.transaction():
        cur = await _locked(c, host_id, exp_id)
        if cur["state"] != frm:
            raise Conflict(f"the experiment is {cur['state']}, not {frm}", code="bad_state")
        row = await c.fetchrow(
            f"""UPDATE experiments SET state = $2, {stamp} = now(), updated_at = now()
                WHERE id = $1 RETURNING {_COLUMNS}""",
            exp_id,
            to_state,
        )
        assert row is not None
        await _record(c, exp_id, "started" if start else "stopped")
    return row_to_dict(row)


async def get(pool: asyncpg.Pool, host_id: int, exp_id: int) -> dict[str, Any]:
    """The host's experiment with its ``changes`` list (oldest first).

    Raises:
        NotFound: no such experiment of this host.
    """
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM experiments WHERE id = $1 AND host_id = $2", exp_id, host_id
    )
    if row is None:
        raise NotFound("no such experiment")
    d = row_to_dict(row)
    changes = await pool.fetch(
        """SELECT change, weights, coverage, state, changed_at FROM experiment_changes
           WHERE experiment_id = $1 ORDER BY id""",
        exp_id,
    )
    d["changes"] = [{**dict(r), "weights": list(r["weights"])} for r in changes]
    return d


async def list_for_host(pool: asyncpg.Pool, host_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """The host's experiments, newest first (at most ``limit``)."""
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM experiments WHERE host_id = $1 ORDER BY id DESC LIMIT $2",
        host_id,
        limit,
    )
    return [row_to_dict(r) for r in rows]


async def running(
    pool: asyncpg.Pool | asyncpg.Connection,
    now: datetime | None = None,
    only: int | None = None,
    host_id: int | None = None,
) -> list[dict[str, Any]]:
    """Every running experiment whose window holds ``now`` (default: the database's now()),
    or just experiment ``only`` if it is one of them, or just ``host_id``'s."""
    rows = await pool.fetch(
        f"""SELECT {_COLUMNS} FROM experiments WHERE state = 'running'
            AND (starts_at IS NULL OR starts_at <= coalesce($1, now()))
            AND (ends_at IS NULL OR ends_at > coalesce($1, now()))
            AND ($2::bigint IS NULL OR id = $2)
            AND ($3::bigint IS NULL OR host_id = $3) ORDER BY id""",
        now,
        only,
        host_id,
    )
    return [row_to_dict(r) for r in rows]


async def _locked(c: asyncpg.Connection, host_id: int, exp_id: int) -> dict[str, Any]:
    row = await c.fetchrow(
        f"SELECT {_COLUMNS} FROM experiments WHERE id = $1 AND host_id = $2 FOR UPDATE",
        exp_id,
        host_id,
    )
    if row is None:
        raise NotFound("no such experiment")
    return row_to_dict(row)


async def _record(c: asyncpg.Connection, exp_id: int, change: str) -> None:
    await c.execute(
        """INSERT INTO experiment_changes (experiment_id, change, weights, coverage, state)
           SELECT id, $2, weights, coverage, state FROM experiments WHERE id = $1""",
        exp_id,
        change,
    )
