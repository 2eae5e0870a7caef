"""Server memory per idle viewer: RSS of one server process with 10k and 19k viewers connected
(no pushes), minus its RSS before the first viewer, divided by the viewers.

    .venv/bin/python bench/memory.py [--sizes 10000,19000] [--json FILE]
    .venv/bin/python bench/memory.py --profile 5000   # where the bytes go (tracemalloc, in-process)
"""

from __future__ import annotations

import argparse

from fanout_common import log, save, scenario, slim, table


def profile(n: int, top: int = 15) -> None:
    """Run the app in this process under tracemalloc, connect ``n`` viewers, print the top
    allocation sites of the per-viewer memory (Python heap only; RSS also holds kernel-side
    socket buffers' user copies, allocator slack and uvloop's C structures)."""
    import dataclasses
    import gc
    import tracemalloc

    from fanout_common import run_sync

    from livecommerce.app import create_app
    from livecommerce.config import Settings
    from livecommerce.loadtest.runner import LoadConfig, run_loadtest
    from livecommerce.loadtest.spawn import Cluster, create_rooms
    from tests.support import start_app, stop_app

    with Cluster(0, log=log) as cluster:
        token = cluster.host_token()
        base = Settings().with_backends(
            cluster.env["LIVECOMMERCE_DATABASE_URL"], cluster.env["LIVECOMMERCE_REDIS_URL"]
        )
        settings = dataclasses.replace(
            base,
            security=dataclasses.replace(base.security, secret=cluster.secret),
            rooms=dataclasses.replace(base.rooms, max_connections_per_ip=10**6),
        )

        async def main() -> None:
            server = await start_app(create_app(settings))
            try:
                made = await create_rooms(server.url, token, 1)
                gc.collect()
                tracemalloc.start(8)
                before = tracemalloc.take_snapshot()
                shots = []

                async def snap() -> None:
                    gc.collect()
                    shots.append(tracemalloc.take_snapshot())

                cfg = LoadConfig(
                    urls=[server.url],
                    viewers=n,
                    rooms=[made[0][0]],
                    pushes=0,
                    duration=1.0,
                    secret=cluster.secret,
                    server_pids=[],
                    ramp=1000.0,
                    events=[(0.5, snap, "snapshot")],
                )
                rep = await run_loadtest(cfg)
                after = shots[0]
                stats = after.compare_to(before, "traceback")
                total = sum(s.size_diff for s in stats)
                conn = rep["viewers_connected"]
                print(
                    f"python heap growth: {total / 1024 / conn:.2f} KiB per viewer ({conn} viewers)"
                )
                for st in stats[:top]:
                    # Innermost frames first (a Traceback is ordered oldest first).
                    frames = [
                        f"{f.filename.rsplit('site-packages/', 1)[-1]}:{f.lineno}"
                        for f in list(st.traceback)[::-1][:3]
                    ]
                    print(f"{st.size_diff / conn:8.0f} B/viewer  {' <- '.join(frames)}")
            finally:
                tracemalloc.stop()
                await stop_app(server)

        run_sync(main())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="10000,19000")
    ap.add_argument("--ramp", type=float, default=2000.0)
    ap.add_argument("--json")
    ap.add_argument("--profile", type=int, metavar="N", help="tracemalloc profile with N viewers")
    args = ap.parse_args()
    if args.profile:
        profile(args.profile)
        return
    results = []
    for n in (int(s) for s in args.sizes.split(",") if s):
        log(f"memory: {n} idle viewers on one server process")
        rep = scenario(viewers=n, pushes=0, duration=2.0, ramp=args.ramp)
        results.append({"viewers": n, "report": slim(rep)})
    md = table(
        ["idle viewers", "connected", "server RSS MiB", "RSS KiB/viewer", "target KiB/viewer"],
        [
            [
                f"{r['viewers']:,}",
                f"{r['report']['viewers_connected']:,}",
                round((r["report"]["server_rss_kib"] or 0) / 1024),
                r["report"]["server_rss_kib_per_viewer"],
                12,
            ]
            for r in results
        ],
    )
    print(md)
    save("memory", {"scenarios": results, "table_md": md}, args.json)


if __name__ == "__main__":
    main()
