"""Bubble-experiment fan-out: a two-variant push vs a plain push to the same 10,000 viewers of one
room, in the same run (issue 17: last-viewer p99 within 1.2x of a plain push).

Fresh embedded PostgreSQL/Redis and ``--servers`` server processes (``livecommerce loadtest``
machinery, bench/fanout_common.py); a running 50/50 experiment; then ``--pushes`` rounds,
alternating plain and variant pushes (a variant push sets title, price display and show time
of variant b). Latency is measured per delivery from the frame's ``ts`` (Redis time at publish)
to its receipt; a push's *last-viewer* latency is its slowest delivery. The first variant push
of an experiment definition on a node decides every local viewer's variant (the room's plan,
realtime/variants.py); it is reported on its own and the comparison uses the rounds after one
warm-up round of each kind.

    .venv/bin/python bench/bubble_fanout.py [--viewers 10000] [--servers 1] [--pushes 60]
                                            [--push-interval 0.5] [--json FILE]
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import aiohttp
from fanout_common import log, save, slim, table

from livecommerce.loadtest.command import run_async
from livecommerce.loadtest.runner import LoadConfig, run_loadtest
from livecommerce.loadtest.spawn import Cluster, create_rooms

CREATIVES = [
    {"variant": "control"},
    {"variant": "promo", "title": "Spring tea, 20% off today", "price_display": "¥7.9",
     "show_seconds": 45},
]  # fmt: skip


async def start_experiment(base: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        body = {"key": "bench-bubble", "variants": [{"key": "control"}, {"key": "promo"}]}
        async with http.post(base + "/api/host/experiments", json=body) as resp:
            exp = await resp.json()
            assert resp.status == 201, exp
        async with http.post(f"{base}/api/host/experiments/{exp['id']}/start") as resp:
            assert resp.status == 200, await resp.text()
        return int(exp["id"])


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile (q in 0..1) of ``values``."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * len(s) + 0.5) - 1))]


def paired_ratio(plain: list[float], variant: list[float]) -> float:
    """Median over variant rounds k (after the first) of variant[k] / the mean of the plain
    rounds just before and after it: robust to the machine's load drifting during the run."""
    ratios = [
        v / ((plain[k] + plain[k + 1]) / 2)
        for k, v in enumerate(variant)
        if k >= 1 and k + 1 < len(plain)
    ]
    return statistics.median(ratios)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--viewers", type=int, default=10_000)
    ap.add_argument("--servers", type=int, default=1)
    ap.add_argument("--pushes", type=int, default=60, help="rounds, half of them variant pushes")
    ap.add_argument("--push-interval", type=float, default=0.5)
    ap.add_argument("--ramp", type=float, default=2000.0)
    ap.add_argument("--json")
    args = ap.parse_args()
    with Cluster(args.servers, log=log) as cluster:
        token = cluster.host_token()
        base = cluster.urls[0]
        exp_id: int = run_async(start_experiment(base, token))

        def extra(k: int) -> dict[str, Any]:
            return {"experiment_id": exp_id, "variants": CREATIVES} if k % 2 else {}

        cfg = LoadConfig(
            urls=cluster.urls,
            viewers=args.viewers,
            ramp=args.ramp,
            duration=0.0,
            pushes=args.pushes,
            push_interval=args.push_interval,
            secret=cluster.secret,
            host_token=token,
            server_pids=cluster.pids,
            settle_timeout=60.0,
            push_extra=extra,
        )

        async def run() -> dict[str, Any]:
            made = await create_rooms(base, token, 1)
            cfg.rooms = [r for r, _ in made]
            cfg.goods = dict(made)
            return await run_loadtest(cfg)

        rep: dict[str, Any] = run_async(run())
    if rep["push_errors"] or len(rep["per_push"]) != args.pushes:
        raise SystemExit(f"push errors or missing pushes: {rep['push_errors']}")
    rounds = rep["per_push"]  # in push order: round k is a variant push when k is odd
    plain = [p["last_viewer_ms"] for k, p in enumerate(rounds) if k % 2 == 0]
    variant = [p["last_viewer_ms"] for k, p in enumerate(rounds) if k % 2 == 1]
    figures = {
        "plain": {
            "p50": statistics.median(plain[1:]),
            "p99": quantile(plain[1:], 0.99),
            "mean": statistics.fmean(plain[1:]),
            "first": plain[0],
        },
        "variant": {
            "p50": statistics.median(variant[1:]),
            "p99": quantile(variant[1:], 0.99),
            "mean": statistics.fmean(variant[1:]),
            "first": variant[0],
        },
    }
    ratio = figures["variant"]["p99"] / figures["plain"]["p99"]
    paired = paired_ratio(plain, variant)
    rows = [
        [kind, len(v) - 1, f["p50"], f["p99"], round(f["mean"], 1), f["first"]]
        for kind, v, f in (
            ("plain push", plain, figures["plain"]),
            ("two-variant push", variant, figures["variant"]),
        )
    ]
    md = table(
        ["push", "rounds measured", "last-viewer p50 ms", "last-viewer p99 ms", "mean ms",
         "first push ms"],
        rows,
    )  # fmt: skip
    md += f"\n\nvariant p99 / plain p99 = {ratio:.2f} (target <= 1.2); median of each variant "
    md += f"round / its two neighbouring plain rounds = {paired:.2f}"
    md += f"; connected {rep['viewers_connected']:,}, missing {rep['missing']}, "
    md += f"duplicates {rep['duplicates']}"
    print(md)
    save(
        "bubble-fanout",
        {
            "viewers": args.viewers,
            "servers": args.servers,
            "pushes": args.pushes,
            "push_interval": args.push_interval,
            "figures_ms": figures,
            "p99_ratio": round(ratio, 3),
            "paired_median_ratio": round(paired, 3),
            "per_round_ms": [[k % 2, p["last_viewer_ms"]] for k, p in enumerate(rounds)],
            "report": slim(rep),
            "table_md": md,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
