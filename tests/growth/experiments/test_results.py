"""Results over HTTP from real exposures and paid orders in PostgreSQL."""

from __future__ import annotations

import asyncpg

from tests.commerce.conftest import Shop, bearer
from tests.growth.experiments.conftest import create_started, users
from tests.support import http


async def _expose(pool: asyncpg.Pool, exp_id: int, user_ids: list[int], variant: int) -> None:
    await pool.executemany(
        "INSERT INTO experiment_exposures (experiment_id, user_id, variant) VALUES ($1, $2, $3)",
        [(exp_id, u, variant) for u in user_ids],
    )


async def _paid(
    pool: asyncpg.Pool, host_id: int, goods_id: int, user_ids: list[int], fen: int
) -> None:
    await pool.executemany(
        """INSERT INTO orders (user_id, goods_id, host_id, quantity, unit_price_fen, total_fen,
                              title, status, idempotency_key, expires_at, paid_at, stock_held)
           VALUES ($1, $2, $3, 1, $4, $4, 't', 'paid', gen_random_uuid()::text,
                   now() + interval '1 hour', now(), false)""",
        [(u, goods_id, host_id, fen) for u in user_ids],
    )


async def test_results_per_variant(shop: Shop) -> None:
    """Exposed users, conversions, GMV means, lifts, Holm and sequential p-values per variant."""
    host_id, host = await shop.host()
    goods_id = await shop.goods(host_id)
    exp = await create_started(shop, host, key="res", guardrail_metrics=["gmv_fen"])
    ids = await users(shop.pool, 2000)
    a, b = ids[:1000], ids[1000:]
    await _expose(shop.pool, exp["id"], a, 0)
    await _expose(shop.pool, exp["id"], b, 1)
    await _paid(shop.pool, host_id, goods_id, a[:100], 1000)  # 10 % convert in control
    await _paid(shop.pool, host_id, goods_id, b[:150], 1000)  # 15 % in the treatment
    status, res = await http(
        "GET", f"{shop.url}/api/host/experiments/{exp['id']}/results", headers=bearer(host)
    )
    assert status == 200, res
    assert isinstance(res, dict)
    assert [v["users"] for v in res["variants"]] == [1000, 1000]
    assert res["srm"]["status"] == "ok"
    primary, guard = res["metrics"]
    assert (primary["metric"], primary["role"], guard["role"]) == (
        "paid_conversion",
        "primary",
        "guardrail",
    )
    assert [v["mean"] for v in primary["variants"]] == [0.1, 0.15]
    (c,) = primary["comparisons"]
    assert c["test"] == "two-proportion z-test"
    assert abs(c["absolute_lift"] - 0.05) < 1e-9
    assert abs(c["relative_lift"] - 0.5) < 1e-9
    assert c["p_value"] < 0.01
    assert c["p_value_holm"] == c["p_value"]  # a family of one
    assert c["sequential_p_value"] >= c["p_value"]
    assert [v["mean"] for v in guard["variants"]] == [100.0, 150.0]
    assert guard["comparisons"][0]["test"] == "Welch t-test"
    assert res["warnings"] == []


async def test_orders_before_exposure_or_of_other_hosts_do_not_count(shop: Shop) -> None:
    """Only the host's paid orders created after the user's exposure are conversions."""
    host_id, host = await shop.host()
    other_id, _ = await shop.host()
    goods_id = await shop.goods(host_id)
    other_goods = await shop.goods(other_id)
    exp = await create_started(shop, host, key="window")
    (u,) = await users(shop.pool, 1)
    await _paid(shop.pool, host_id, goods_id, [u], 500)  # before exposure
    await _expose(shop.pool, exp["id"], [u], 0)
    await _paid(shop.pool, other_id, other_goods, [u], 500)  # another host's shop
    status, res = await http(
        "GET", f"{shop.url}/api/host/experiments/{exp['id']}/results", headers=bearer(host)
    )
    assert status == 200
    assert isinstance(res, dict)
    assert res["metrics"][0]["variants"][0]["total"] == 0
    assert "minimum_sample_not_reached" in res["warnings"]


async def test_srm_error_on_skewed_sample(shop: Shop) -> None:
    """A 50/50 experiment with 600 vs 400 exposed users reports an SRM error."""
    _, host = await shop.host()
    exp = await create_started(shop, host, key="skewed")
    ids = await users(shop.pool, 1000)
    await _expose(shop.pool, exp["id"], ids[:600], 0)
    await _expose(shop.pool, exp["id"], ids[600:], 1)
    status, res = await http(
        "GET", f"{shop.url}/api/host/experiments/{exp['id']}/results", headers=bearer(host)
    )
    assert status == 200
    assert isinstance(res, dict)
    assert res["srm"]["status"] == "error"
    assert res["srm"]["p_value"] < 0.001
    assert "sample_ratio_mismatch_error" in res["warnings"]


async def test_srm_follows_the_weights_in_force_at_each_first_exposure(shop: Shop) -> None:
    """A recorded weight change is not a sample-ratio mismatch: users first exposed under
    50/50 are expected 50/50, those exposed after the change 20/80. A real skew after the
    change is still an error."""
    _, host = await shop.host()
    exp = await create_started(shop, host, key="reweighted")
    url = f"{shop.url}/api/host/experiments/{exp['id']}"
    ids = await users(shop.pool, 3000)
    await _expose(shop.pool, exp["id"], ids[:500], 0)
    await _expose(shop.pool, exp["id"], ids[500:1000], 1)
    status, _ = await http("PATCH", url, json={"weights": [0.2, 0.8]}, headers=bearer(host))
    assert status == 200
    await _expose(shop.pool, exp["id"], ids[1000:1200], 0)
    await _expose(shop.pool, exp["id"], ids[1200:2000], 1)
    status, res = await http("GET", url + "/results", headers=bearer(host))
    assert status == 200, res
    assert isinstance(res, dict)
    assert [v["users"] for v in res["variants"]] == [700, 1300]
    assert [v["weight"] for v in res["variants"]] == [0.2, 0.8]  # the weights now
    assert res["srm"]["status"] == "ok", res["srm"]
    assert res["srm"]["chi_squared"] < 1e-9
    assert not any(w.startswith("sample_ratio") for w in res["warnings"])
    # 500/500 more after the change, where 200/800 were due: a real mismatch.
    await _expose(shop.pool, exp["id"], ids[2000:2500], 0)
    await _expose(shop.pool, exp["id"], ids[2500:3000], 1)
    status, res = await http("GET", url + "/results", headers=bearer(host))
    assert isinstance(res, dict)
    assert res["srm"]["status"] == "error"
