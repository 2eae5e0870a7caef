"""Side by side with python-socketio: the same viewers and pushes against our server and against
an AsyncServer on aiohttp doing a room emit (bench/fanout_socketio_server.py), in the same run,
with the same lean loader. Prints the ratios of deliveries/s and of last-viewer p99.

    .venv/bin/python bench/fanout_vs_socketio.py --viewers 10000 [--pushes 10] [--json FILE]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fanout_common import log, run_sync, save, scenario, slim, table

from livecommerce.embedded.processes import free_port
from livecommerce.loadtest.runner import LoadConfig, run_loadtest

HERE = Path(__file__).resolve().parent


def socketio_run(viewers: int, pushes: int, interval: float, ramp: float) -> dict[str, Any]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "fanout_socketio_server.py"), str(port)],
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        import socket

        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the socket.io server did not start") from None
                time.sleep(0.1)
        cfg = LoadConfig(
            urls=[f"http://127.0.0.1:{port}"],
            viewers=viewers,
            rooms=[1],
            ramp=ramp,
            pushes=pushes,
            push_interval=interval,
            duration=0.0,
            mode="socketio",
            server_pids=[proc.pid],
            settle_timeout=120.0,
        )
        rep: dict[str, Any] = run_sync(run_loadtest(cfg))
        return rep
    finally:
        proc.terminate()
        proc.wait(15)


def figures(rep: dict[str, Any]) -> dict[str, Any]:
    return {
        "deliveries_per_s": rep["deliveries_per_s"],
        "last_viewer_p50_ms": rep["last_viewer_latency_ms"]["p50"],
        "last_viewer_p99_ms": rep["last_viewer_latency_ms"]["p99"],
        "rss_kib_per_viewer": rep["server_rss_kib_per_viewer"],
        "missing": rep["missing"],
        "duplicates": rep["duplicates"],
        "viewers_connected": rep["viewers_connected"],
        "connect_failures": rep["connect_failures"],
        "server_cpu_s": sum(rep["server_cpu_s"]),
        "loader_cpu_s": rep["loader_cpu_s"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--viewers", type=int, default=10000)
    ap.add_argument("--pushes", type=int, default=10)
    ap.add_argument(
        "--push-interval",
        type=float,
        default=3.0,
        help="seconds between pushes: longer than socket.io's slowest fan-out",
    )
    ap.add_argument("--ramp", type=float, default=1000.0)
    ap.add_argument("--json")
    args = ap.parse_args()
    log(f"ours: {args.viewers} viewers, {args.pushes} pushes")
    ours = scenario(
        viewers=args.viewers, pushes=args.pushes, push_interval=args.push_interval, ramp=args.ramp
    )
    log(f"python-socketio: {args.viewers} viewers, {args.pushes} pushes")
    theirs = socketio_run(args.viewers, args.pushes, args.push_interval, args.ramp)
    a, b = figures(ours), figures(theirs)
    ratio = (a["deliveries_per_s"] or 0) / (b["deliveries_per_s"] or float("inf"))
    p99_ratio = (b["last_viewer_p99_ms"] or 0) / max(a["last_viewer_p99_ms"] or 0, 1e-9)
    md = table(
        [
            "server",
            "viewers",
            "deliveries/s",
            "last-viewer p50 ms",
            "last-viewer p99 ms",
            "RSS KiB/viewer",
            "missing",
            "dup",
            "server CPU s",
        ],
        [
            [
                name,
                f"{f['viewers_connected']:,}",
                f"{f['deliveries_per_s'] or 0:,.0f}",
                f["last_viewer_p50_ms"],
                f["last_viewer_p99_ms"],
                f["rss_kib_per_viewer"],
                f["missing"],
                f["duplicates"],
                round(f["server_cpu_s"], 1),
            ]
            for name, f in (("livecommerce", a), ("python-socketio", b))
        ],
    )
    print(md)
    print(
        f"deliveries/s ratio (ours/socketio): {ratio:.1f}x; "
        f"last-viewer p99 ratio (socketio/ours): {p99_ratio:.1f}x"
    )
    save(
        "fanout-vs-socketio",
        {
            "viewers": args.viewers,
            "pushes": args.pushes,
            "ours": a,
            "socketio": b,
            "ratio_deliveries_per_s": round(ratio, 2),
            "ratio_last_viewer_p99": round(p99_ratio, 2),
            "table_md": md,
            "full": {"ours": slim(ours), "socketio": slim(theirs)},
        },
        args.json,
    )


if __name__ == "__main__":
    main()
