"""One Redis vs a 3-master Valkey Cluster (sharded pub/sub), same load, same run: 3 server
processes, ``--rooms`` rooms with ``--viewers-per-room`` viewers spread over them, one push per
room every ``--push-interval`` s. Deliveries/s, last-viewer p99, missing and duplicate frames.

    .venv/bin/python bench/cluster.py [--rooms 30] [--viewers-per-room 1000] [--pushes 10]
                                      [--cluster-first] [--json FILE]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from fanout_common import log, save, scenario, slim, table

from livecommerce.devtools.valkey_cluster import LocalCluster


def run(args: argparse.Namespace, env: dict[str, str] | None) -> dict[str, Any]:
    return scenario(
        viewers=args.rooms * args.viewers_per_room,
        servers=3,
        rooms=args.rooms,
        pushes=args.pushes,
        push_interval=args.push_interval,
        ramp=args.ramp,
        env=env,
    )


def row(name: str, rep: dict[str, Any]) -> list[Any]:
    lat = rep["last_viewer_latency_ms"]
    return [
        name,
        f"{rep['viewers_connected']:,}",
        rep["pushes"],
        f"{rep['deliveries_per_s'] or 0:,.0f}",
        lat["p50"],
        lat["p99"],
        rep["missing"],
        rep["duplicates"],
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rooms", type=int, default=30)
    ap.add_argument("--viewers-per-room", type=int, default=1000)
    ap.add_argument("--pushes", type=int, default=10)
    ap.add_argument("--push-interval", type=float, default=1.0)
    ap.add_argument("--ramp", type=float, default=2000.0)
    ap.add_argument("--cluster-first", action="store_true", help="run the cluster first")
    ap.add_argument("--json")
    args = ap.parse_args()
    viewers = args.rooms * args.viewers_per_room
    log(f"cluster bench: {args.rooms} rooms x {args.viewers_per_room} viewers = {viewers:,}")

    single: dict[str, Any] = {}
    if not args.cluster_first:
        log("one Redis (embedded Valkey)")
        single = run(args, None)
    with tempfile.TemporaryDirectory(prefix="lc-bench-cluster-") as tmp:
        cluster = LocalCluster(Path(tmp), masters=3, replicas=0)
        url = cluster.start()
        try:
            log(f"3-master Valkey Cluster {url.rsplit('@', 1)[1]}")
            sharded = run(
                args, {"LIVECOMMERCE_REDIS_URL": url, "LIVECOMMERCE_TIMER_WHEEL_SHARDS": "3"}
            )
        finally:
            cluster.stop()
    if args.cluster_first:
        log("one Redis (embedded Valkey)")
        single = run(args, None)
    md = table(
        ["backend", "viewers", "pushes", "deliveries/s", "last-viewer p50 ms",
         "last-viewer p99 ms", "missing", "duplicates"],
        [row("one Redis", single), row("3-master cluster", sharded)],
    )  # fmt: skip
    print(md)
    save(
        "cluster",
        {
            "rooms": args.rooms,
            "viewers_per_room": args.viewers_per_room,
            "order": "cluster first" if args.cluster_first else "one Redis first",
            "single": slim(single),
            "cluster": slim(sharded),
            "table_md": md,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
