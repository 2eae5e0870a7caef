"""An experiment's results: per-variant metrics read from PostgreSQL orders, then statistics.

Who counts: users with an exposure. A user exposed to more than one variant (possible only in a
non-sticky experiment whose weights moved) is excluded and counted in
``multi_variant_users``. What counts: the host's orders that were paid (and not refunded),
created at or after the user's first exposure and before the experiment stopped (or now).
The SRM check expects each user at the weights in force at their first exposure (the change
log), so a weight change of a running experiment is not reported as a mismatch.

The dict returned is the results response documented in docs/experiments.md.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from livecommerce.growth.experiments import service, stats

MIN_USERS_PER_VARIANT = 100
MIN_CONVERSIONS_PER_VARIANT = 5

_PER_VARIANT = """
WITH exposed AS (
    SELECT user_id, min(variant) AS variant, count(*) AS n_variants, min(first_at) AS first_at
    FROM experiment_exposures WHERE experiment_id = $1 GROUP BY user_id
), per_user AS (
    SELECT x.variant, x.n_variants,
           coalesce(o.paid_orders, 0)::float8 AS paid_orders, coalesce(o.gmv, 0)::float8 AS gmv
    FROM exposed x
    LEFT JOIN LATERAL (
        SELECT count(*) AS paid_orders, sum(total_fen) AS gmv FROM orders o
        WHERE o.user_id = x.user_id AND o.host_id = $2 AND o.paid_at IS NOT NULL
          AND o.status <> 'refunded' AND o.created_at >= x.first_at
          AND o.created_at < coalesce($3, now())
    ) o ON true
)
SELECT variant, n_variants > 1 AS multi, count(*) AS users,
       count(*) FILTER (WHERE paid_orders > 0) AS converted,
       sum(gmv) AS gmv, sum(gmv * gmv) AS gmv_sq,
       sum(paid_orders) AS orders, sum(paid_orders * paid_orders) AS orders_sq
FROM per_user GROUP BY variant, n_variants > 1
"""

# The weights in force at each (single-variant) user's first exposure, from the change log:
# what the SRM check expects of them (a recorded weight change is not a mismatch).
_PERIOD_WEIGHTS = """
WITH exposed AS (
    SELECT user_id, min(first_at) AS first_at FROM experiment_exposures
    WHERE experiment_id = $1 GROUP BY user_id HAVING count(*) = 1
)
SELECT c.weights, count(*) AS users
FROM exposed x
LEFT JOIN LATERAL (
    SELECT weights FROM experiment_changes
    WHERE experiment_id = $1 AND changed_at <= x.first_at ORDER BY id DESC LIMIT 1
) c ON true
GROUP BY c.weights
"""


def _sample(metric: str, row: dict[str, float]) -> stats.Sample:
    n = int(row["users"])
    if metric == "paid_conversion":
        c = float(row["converted"])
        return stats.Sample(n, c, c, True)
    if metric == "gmv_fen":
        return stats.Sample(n, float(row["gmv"]), float(row["gmv_sq"]), False)
    return stats.Sample(n, float(row["orders"]), float(row["orders_sq"]), False)


async def compute(pool: asyncpg.Pool, host_id: int, exp_id: int) -> dict[str, Any]:
    """The results of the host's experiment (see the module docstring for who and what counts).

    Raises:
        NotFound: no such experiment of this host.
    """
    exp = await service.get(pool, host_id, exp_id)
    rows = await pool.fetch(_PER_VARIANT, exp_id, host_id, exp["stopped_at"])
    k = len(exp["variants"])
    empty = {"users": 0, "converted": 0, "gmv": 0.0, "gmv_sq": 0.0, "orders": 0.0, "orders_sq": 0.0}
    per: list[dict[str, float]] = [dict(empty) for _ in range(k)]
    multi = 0
    for r in rows:
        if r["multi"]:
            multi += int(r["users"])
        elif r["variant"] < k:
            per[r["variant"]] = {key: r[key] or 0 for key in empty}
    counts = [int(p["users"]) for p in per]
    srm = stats.srm(counts, await _expected_weights(pool, exp_id, exp["weights"]))
    warnings: list[str] = []
    if srm.status in ("warning", "error"):
        warnings.append(f"sample_ratio_mismatch_{srm.status}")
    if min(counts) < MIN_USERS_PER_VARIANT:
        warnings.append("minimum_sample_not_reached")
    if multi:
        warnings.append("multi_variant_users_excluded")

    metrics: list[dict[str, Any]] = []
    family: list[tuple[int, int, float]] = []  # (metric index, comparison index, p)
    guard_family: list[tuple[int, int, float]] = []
    roles = [(exp["primary_metric"], "primary")] + [
        (g, "guardrail") for g in exp["guardrail_metrics"]
    ]
    for mi, (name, role) in enumerate(roles):
        binomial = service.METRICS[name][0]
        samples = [_sample(name, p) for p in per]
        few = min(s.total for s in samples) < MIN_CONVERSIONS_PER_VARIANT
        if binomial and few and "minimum_conversions_not_reached" not in warnings:
            warnings.append("minimum_conversions_not_reached")
        comparisons = []
        for vi in range(1, k):
            c = stats.compare(samples[0], samples[vi])
            comparisons.append(
                {
                    "variant": vi,
                    "absolute_lift": c.absolute_lift,
                    "absolute_ci": list(c.absolute_ci) if c.absolute_ci else None,
                    "relative_lift": c.relative_lift,
                    "relative_ci": list(c.relative_ci) if c.relative_ci else None,
                    "p_value": c.p_value,
                    "test": c.test,
                    "p_value_holm": None,
                    "sequential_p_value": c.sequential_p_value,
                    "sequential_relative_ci": (
                        list(c.sequential_relative_ci) if c.sequential_relative_ci else None
                    ),
                }
            )
            if c.p_value is not None:
                (family if role == "primary" else guard_family).append(
                    (mi, len(comparisons) - 1, c.p_value)
                )
        metrics.append(
            {
                "metric": name,
                "role": role,
                "kind": "binomial" if binomial else "continuous",
                "variants": [
                    {"variant": i, "users": s.n, "total": s.total, "mean": s.mean}
                    for i, s in enumerate(samples)
                ],
                "comparisons": comparisons,
            }
        )
    for fam in (family, guard_family):
        for (mi, ci, _), adj in zip(fam, stats.holm([p for _, _, p in fam]), strict=True):
            metrics[mi]["comparisons"][ci]["p_value_holm"] = adj
    return {
        "experiment_id": exp_id,
        "state": exp["state"],
        "variants": [
            {"variant": i, "key": v["key"], "weight": exp["weights"][i], "users": counts[i]}
            for i, v in enumerate(exp["variants"])
        ],
        "multi_variant_users": multi,
        "srm": {"p_value": srm.p_value, "chi_squared": srm.chi_squared, "status": srm.status},
        "warnings": warnings,
        "metrics": metrics,
    }


async def _expected_weights(pool: asyncpg.Pool, exp_id: int, current: list[float]) -> list[float]:
    """The share of exposed users each variant should have: the weights in force at each
    user's first exposure (a weight change starts a new period), averaged over the users.
    Equals ``current`` while the weights never changed."""
    k = len(current)
    totals = [0.0] * k
    for r in await pool.fetch(_PERIOD_WEIGHTS, exp_id):
        weights = list(r["weights"]) if r["weights"] is not None else current
        if len(weights) != k:  # variants change only in a draft, before any exposure
            weights = current
        for i, w in enumerate(weights):
            totals[i] += w * r["users"]
    return totals if sum(totals) > 0 else current
