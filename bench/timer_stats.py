"""Statistics, machine facts and the summary table for bench/timer_lateness.py."""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import os
import platform
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def pct(sorted_values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending sequence (None when empty)."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1))
    return round(float(sorted_values[k]), 3)


def dist(values: Iterable[float]) -> dict[str, float | None]:
    v = sorted(values)
    return {
        "p50_ms": pct(v, 50),
        "p90_ms": pct(v, 90),
        "p99_ms": pct(v, 99),
        "max_ms": round(float(v[-1]), 3) if v else None,
        "mean_ms": round(sum(v) / len(v), 3) if v else None,
    }


def cpu_snapshot() -> tuple[int, int, int]:
    """(busy jiffies of the whole machine, all jiffies, jiffies of this process tree).

    The tree (this process, its servers, workers, PostgreSQL and Valkey) is found through
    /proc; CPU of children that already exited is not counted, so "others" is an upper bound.
    """
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    parent: dict[int, int] = {}
    cpu: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            rest = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            parent[int(entry.name)] = int(rest[1])
            cpu[int(entry.name)] = int(rest[11]) + int(rest[12])
    mine = {os.getpid()}
    grew = True
    while grew:
        new = {pid for pid, pp in parent.items() if pp in mine} - mine
        grew = bool(new)
        mine |= new
    return sum(fields) - idle, sum(fields), sum(cpu.get(pid, 0) for pid in mine)


def cpu_share(start: tuple[int, int, int], end: tuple[int, int, int]) -> dict[str, float]:
    """Machine CPU busy % between two snapshots (100 % = all cores), ours vs everything else."""
    total = max(1, end[1] - start[1])
    busy = 100 * (end[0] - start[0]) / total
    mine = 100 * (end[2] - start[2]) / total
    return {
        "machine_busy_pct": round(busy, 1),
        "bench_tree_pct": round(mine, 1),
        "others_pct": round(max(0.0, busy - mine), 1),
    }


def machine() -> dict[str, Any]:
    mem_kib = 0
    model = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for pkg in ("livecommerce", "arq", "celery", "kombu", "redis", "hiredis", "websockets"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[pkg] = importlib.metadata.version(pkg)
    return {
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "versions": versions,
    }


def table(results: dict[str, Any]) -> str:
    head = (
        f"{'system':<14}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}{'fired':>8}{'dup':>6}{'missed':>8}"
    )
    lines = [head, "-" * len(head)]

    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:.1f}"

    rows: list[tuple[str, dict[str, Any]]] = []
    for n, run in results.get("ours", {}).get("runs", {}).items():
        rows.append((f"ours {n}p frame", run))
        rows.append((f"ours {n}p recv", {**run, **run["receipt"]}))
    for name in ("arq", "celery"):
        if name in results:
            rows.append((f"{name} start", results[name]))
    for label, s in rows:
        lines.append(
            f"{label:<14}{fmt(s['p50_ms']):>9}{fmt(s['p90_ms']):>9}{fmt(s['p99_ms']):>9}"
            f"{fmt(s['max_ms']):>9}{s['fired']:>8}{s['duplicates']:>6}{s['missed']:>8}"
        )
    lines.append("(lateness in ms after the due time; frame = its ts, recv = at the viewer)")
    for label, s in rows[::-1]:
        if "cpu_while_firing" in s and not label.endswith("recv"):
            c = s["cpu_while_firing"]
            lines.append(
                f"CPU while firing, {label.rsplit(' ', 1)[0]}: machine {c['machine_busy_pct']}%,"
                f" this benchmark {c['bench_tree_pct']}%, other work {c['others_pct']}%"
            )
    return "\n".join(lines)
