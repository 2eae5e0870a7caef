"""Shared by the fan-out, memory and multi-node benchmarks: one scenario = fresh servers + one
`livecommerce loadtest` run through its Python API; results saved as dated JSON."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from livecommerce.loadtest.command import run_async
from livecommerce.loadtest.runner import LoadConfig, machine, run_loadtest
from livecommerce.loadtest.spawn import Cluster, create_rooms

RESULTS = Path(__file__).resolve().parent / "results"
BULKY = ("timeline", "latency_buckets_ms", "per_push")


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def scenario(
    *,
    viewers: int,
    servers: int = 1,
    rooms: int = 1,
    pushes: int = 20,
    push_interval: float = 1.0,
    ramp: float = 2000.0,
    duration: float = 0.0,
    churn: float = 0.0,
    workers: int = 0,
    kill_at: float | None = None,
    progress: bool = True,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Start ``servers`` server processes on fresh embedded backends, run, stop; the report.
    ``env``: extra server environment (e.g. ``LIVECOMMERCE_REDIS_URL`` of a Redis Cluster)."""
    with Cluster(servers, env=env, log=log) as cluster:
        token = cluster.host_token()
        cfg = LoadConfig(
            urls=cluster.urls,
            viewers=viewers,
            ramp=ramp,
            duration=duration,
            workers=workers,
            pushes=pushes,
            push_interval=push_interval,
            churn=churn,
            secret=cluster.secret,
            host_token=token,
            server_pids=cluster.pids,
            progress=progress,
            settle_timeout=60.0,
        )
        if kill_at is not None:
            victim = cluster.servers[-1]

            async def kill() -> None:
                victim.proc.send_signal(signal.SIGKILL)

            cfg.events.append((kill_at, kill, f"SIGKILL server {victim.url}"))

        async def main() -> dict[str, Any]:
            made = await create_rooms(cluster.urls[0], token, rooms)
            cfg.rooms = [r for r, _ in made]
            cfg.goods = dict(made)
            return await run_loadtest(cfg)

        rep: dict[str, Any] = run_async(main())
        return rep


def slim(rep: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rep.items() if k not in BULKY}


def save(name: str, data: dict[str, Any], out: str | None = None) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = Path(out) if out else RESULTS / f"{name}-{time.strftime('%Y-%m-%d')}.json"
    doc = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        **data,
    }
    path.write_text(json.dumps(doc, indent=1) + "\n")
    log(f"wrote {path}")
    return path


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table (printed, and pasted into bench/README.md)."""
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    return run_async(coro)


__all__ = ["Callable", "asyncio", "log", "run_sync", "save", "scenario", "slim", "table"]
