"""Fan-out benchmark: one room with 1k/5k/10k/19k viewers on one server process, and 40k over three
server processes on one Redis; 20 pushes each. Last-viewer latency p50/p99, deliveries per second.

    .venv/bin/python bench/fanout.py [--sizes 1000,5000,10000,19000] [--multi 40000]
                                     [--pushes 20] [--push-interval 1.0] [--json FILE]
"""

from __future__ import annotations

import argparse

from fanout_common import log, save, scenario, slim, table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="1000,5000,10000,19000")
    ap.add_argument("--multi", type=int, default=40000, help="viewers over 3 servers (0: skip)")
    ap.add_argument("--pushes", type=int, default=20)
    ap.add_argument("--push-interval", type=float, default=1.0)
    ap.add_argument("--ramp", type=float, default=2000.0)
    ap.add_argument("--json")
    args = ap.parse_args()
    runs: list[tuple[int, int]] = [(int(s), 1) for s in args.sizes.split(",") if s]
    if args.multi:
        runs.append((args.multi, 3))
    results = []
    for viewers, servers in runs:
        log(f"scenario: {viewers} viewers, {servers} server process(es)")
        rep = scenario(
            viewers=viewers,
            servers=servers,
            pushes=args.pushes,
            push_interval=args.push_interval,
            ramp=args.ramp,
        )
        results.append({"viewers": viewers, "servers": servers, "report": slim(rep)})
    rows = []
    for r in results:
        rep = r["report"]
        rows.append(
            [
                f"{r['viewers']:,}",
                r["servers"],
                f"{rep['viewers_connected']:,}",
                rep["last_viewer_latency_ms"]["p50"],
                rep["last_viewer_latency_ms"]["p99"],
                f"{rep['deliveries_per_s'] or 0:,.0f}",
                rep["missing"],
                rep["duplicates"],
                rep["server_rss_kib_per_viewer"],
                sum(rep["server_cpu_s"]),
                rep["loader_cpu_s"],
            ]
        )
    md = table(
        [
            "viewers",
            "servers",
            "connected",
            "last-viewer p50 ms",
            "last-viewer p99 ms",
            "deliveries/s",
            "missing",
            "dup",
            "RSS KiB/viewer",
            "server CPU s",
            "loader CPU s",
        ],
        rows,
    )
    print(md)
    save(
        "fanout",
        {
            "pushes": args.pushes,
            "push_interval": args.push_interval,
            "scenarios": results,
            "table_md": md,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
