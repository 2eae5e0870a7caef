"""Multi-node: 3 server processes behind one Redis, viewers spread over them, every push made on
node 1; 10 % of the viewers drop and resume (churn) and node 3 is SIGKILLed mid-run — its viewers
reconnect to the others and resume. Counts missing and duplicate frames.

    .venv/bin/python bench/multinode.py [--viewers 9000] [--pushes 20] [--kill-at 4] [--json FILE]
"""

from __future__ import annotations

import argparse

from fanout_common import log, save, scenario, slim, table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--viewers", type=int, default=9000)
    ap.add_argument("--pushes", type=int, default=20)
    ap.add_argument("--push-interval", type=float, default=0.5)
    ap.add_argument("--churn", type=float, default=10.0)
    ap.add_argument("--kill-at", type=float, default=4.0, help="seconds into the run")
    ap.add_argument("--ramp", type=float, default=2000.0)
    ap.add_argument("--json")
    args = ap.parse_args()
    log(f"multinode: {args.viewers} viewers on 3 nodes, node 3 killed at {args.kill_at}s")
    rep = scenario(
        viewers=args.viewers,
        servers=3,
        pushes=args.pushes,
        push_interval=args.push_interval,
        churn=args.churn,
        kill_at=args.kill_at,
        ramp=args.ramp,
    )
    md = table(
        [
            "viewers",
            "nodes",
            "pushes",
            "churn dropped",
            "resumed",
            "resynced",
            "lost",
            "missing",
            "duplicates",
            "last-viewer p99 ms",
        ],
        [
            [
                f"{rep['viewers_connected']:,}",
                3,
                rep["pushes"],
                rep["churn"]["dropped"],
                rep["churn"]["resumed"],
                rep["churn"]["resynced"],
                rep["viewers_lost"],
                rep["missing"],
                rep["duplicates"],
                rep["last_viewer_latency_ms"]["p99"],
            ]
        ],
    )
    print(md)
    save("multinode", {"kill_at_s": args.kill_at, "report": slim(rep), "table_md": md}, args.json)


if __name__ == "__main__":
    main()
