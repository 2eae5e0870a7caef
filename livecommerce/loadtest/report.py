"""Merging the workers' figures into one report: the JSON document, the summary table, the plot."""

from __future__ import annotations

import platform
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from livecommerce.loadtest.hist import Histogram

if TYPE_CHECKING:
    from livecommerce.loadtest.runner import LoadConfig


def _merge(dicts: list[dict[str, Any]]) -> Histogram:
    h = Histogram()
    for d in dicts:
        h.merge(Histogram.from_dict(d))
    return h


def build(
    *,
    cfg: LoadConfig,
    results: list[dict[str, Any]],
    pushed: list[tuple[int, int]],
    push_errors: dict[str, int],
    behind: int,
    ramp_s: float,
    connected_after_ramp: int,
    timeline: list[tuple[float, int]],
    rss: tuple[dict[int, int | None], dict[int, int | None]],
    cpu: tuple[dict[int, float | None], dict[int, float | None]],
    workers: int,
    sources: list[str],
    coordinator_cpu_s: float,
) -> dict[str, Any]:
    from livecommerce.loadtest.runner import machine

    latency = _merge([r["latency"] for r in results])
    connect = _merge([r["connect"] for r in results])
    push_max: dict[tuple[int, int], float] = {}
    push_count: Counter[tuple[int, int]] = Counter()
    for r in results:
        for room, seq, ms in r["push_max"]:
            key = (room, seq)
            push_max[key] = max(ms, push_max.get(key, -1.0))
        for room, seq, n in r["push_count"]:
            push_count[(room, seq)] += n
    last = Histogram()
    per_push = []
    for key in pushed:
        if key in push_max:
            last.record(push_max[key])
            per_push.append(
                {
                    "room": key[0],
                    "seq": key[1],
                    "deliveries": push_count[key],
                    "last_viewer_ms": round(push_max[key], 3),
                }
            )
    push_deliveries = sum(push_count[k] for k in pushed)
    busy_s = sum(max(push_max.get(k, 0.0), 1.0) for k in pushed if k in push_max) / 1000.0
    failures: Counter[str] = Counter()
    disconnects: Counter[str] = Counter()
    for r in results:
        failures.update(r["failures"])
        disconnects.update(r["disconnects"])
    rss0, rss1 = rss
    cpu0, cpu1 = cpu
    rss_delta = [
        (rss1[p] or 0) - (rss0[p] or 0) for p in rss0 if rss0[p] is not None and rss1.get(p)
    ]
    server_rss = sum(rss1[p] or 0 for p in rss1)
    per_viewer = (
        round(sum(rss_delta) / connected_after_ramp, 2)
        if rss_delta and connected_after_ramp
        else None
    )
    server_cpu = [
        round((cpu1[p] or 0.0) - (cpu0[p] or 0.0), 2)
        for p in cpu0
        if cpu0[p] is not None and cpu1.get(p) is not None
    ]
    ever = sum(r["ever_connected"] for r in results)
    churned = disconnects.get("churn (forced drop)", 0)
    return {
        "version": 1,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {**machine(), "python": platform.python_version()},
        "mode": cfg.mode,
        "servers": len(cfg.urls),
        "workers": workers,
        "sources": sources,
        "viewers_target": cfg.viewers,
        "viewers_connected": connected_after_ramp,
        "viewers_connected_at_end": sum(r["connected"] for r in results),
        "viewers_lost": sum(r["lost"] for r in results),
        "rooms": len(cfg.rooms),
        "connect_failures": sum(failures.values()),
        "connect_failure_reasons": dict(failures.most_common()),
        "connects_per_s": round(ever / ramp_s, 1) if ramp_s > 0 else None,
        "connect_ms": connect.summary(),
        "ramp_seconds": round(ramp_s, 2),
        "pushes": len(pushed),
        "push_errors": push_errors,
        "deliveries": push_deliveries,
        "frames_received": sum(r["frames"] for r in results),
        "deliveries_per_s": round(push_deliveries / busy_s, 1) if busy_s else None,
        "missing": sum(r["missing"] for r in results),
        "duplicates": sum(r["duplicates"] for r in results),
        "viewers_with_missing": sum(r["viewers_with_missing"] for r in results),
        "viewers_with_duplicates": sum(r["viewers_with_duplicates"] for r in results),
        "viewers_behind_at_settle": behind,
        "latency_ms": latency.summary(),
        "last_viewer_latency_ms": last.summary((50, 99)),
        "per_push": per_push,
        "churn": {
            "percent": cfg.churn,
            "dropped": churned,
            "resumed": sum(r["resumed"] for r in results),
            "resynced": sum(r["resynced"] for r in results),
            "replayed_frames": sum(r["replayed"] for r in results),
        },
        "disconnects": dict(disconnects.most_common()),
        "server_rss_kib": server_rss or None,
        "server_rss_kib_per_viewer": per_viewer,
        "server_cpu_s": server_cpu,
        "loader_cpu_s": round(sum(r["cpu_s"] for r in results) + coordinator_cpu_s, 2),
        "timeline": timeline,
        "latency_buckets_ms": latency.buckets_ms(),
    }


def summary_table(rep: dict[str, Any]) -> str:
    lat, last = rep["latency_ms"], rep["last_viewer_latency_ms"]
    rows = [
        (
            "viewers",
            f"{rep['viewers_connected']:,} connected of {rep['viewers_target']:,} "
            f"({rep['servers']} server(s), {rep['workers']} worker(s))",
        ),
        (
            "connects",
            f"{rep['connects_per_s'] or 0:,.0f}/s, handshake p50 "
            f"{rep['connect_ms']['p50']} ms p99 {rep['connect_ms']['p99']} ms",
        ),
        ("connect failures", str(rep["connect_failures"])),
        ("pushes", f"{rep['pushes']} ({sum(rep['push_errors'].values())} failed)"),
        ("deliveries", f"{rep['deliveries']:,} ({rep['deliveries_per_s'] or 0:,.0f}/s in flight)"),
        ("missing", f"{rep['missing']} ({rep['viewers_with_missing']} viewers)"),
        ("duplicates", f"{rep['duplicates']} ({rep['viewers_with_duplicates']} viewers)"),
        ("latency ms", "  ".join(f"{k} {v}" for k, v in lat.items())),
        ("last viewer ms", "  ".join(f"{k} {v}" for k, v in last.items())),
        (
            "churn",
            f"{rep['churn']['dropped']} dropped, {rep['churn']['resumed']} resumed, "
            f"{rep['churn']['resynced']} resynced, {rep['viewers_lost']} lost",
        ),
        (
            "server RSS",
            f"{rep['server_rss_kib_per_viewer']} KiB/viewer"
            + (f", {rep['server_rss_kib'] / 1024:,.0f} MiB total" if rep["server_rss_kib"] else ""),
        ),
        ("CPU s", f"server {rep['server_cpu_s']}  loader {rep['loader_cpu_s']}"),
    ]
    for reason, n in list(rep["connect_failure_reasons"].items())[:5]:
        rows.append(("  failure", f"{n} x {reason}"))
    for reason, n in list(rep["disconnects"].items())[:5]:
        rows.append(("  disconnect", f"{n} x {reason}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def write_plot(rep: dict[str, Any], path: str | Path) -> str | None:
    """Latency distribution and connected viewers over time; None, or why it could not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'livecommerce[bench]')"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    buckets = rep["latency_buckets_ms"]
    if buckets:
        total = sum(n for _, n in buckets)
        xs, ys, seen = [], [], 0
        for ub, n in buckets:
            seen += n
            xs.append(ub)
            ys.append(100.0 * seen / total)
        ax1.plot(xs, ys, drawstyle="steps-post")
        ax1.set_xscale("symlog", linthresh=1.0)
    ax1.set_xlabel("push latency, ts -> receipt (ms)")
    ax1.set_ylabel("deliveries (cumulative %)")
    ax1.set_title(
        f"p50 {rep['latency_ms']['p50']} / p99 {rep['latency_ms']['p99']} ms, "
        f"last viewer p99 {rep['last_viewer_latency_ms']['p99']} ms"
    )
    ax1.grid(True, alpha=0.3)
    tl = rep["timeline"]
    ax2.plot([t for t, _ in tl], [n for _, n in tl])
    ax2.set_xlabel("seconds")
    ax2.set_ylabel("connected viewers")
    ax2.set_title(f"{rep['viewers_target']:,} viewers, {rep['connects_per_s']}/s connects")
    ax2.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None
