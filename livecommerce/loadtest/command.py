"""``livecommerce loadtest``: arguments, target setup (a URL, or ``--spawn``), run, report."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from livecommerce.config import Settings
from livecommerce.loadtest import report
from livecommerce.loadtest.runner import LoadConfig, LoadTestError, run_loadtest
from livecommerce.loadtest.spawn import Cluster, create_rooms


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "url",
        nargs="*",
        help="server base URL(s), e.g. http://127.0.0.1:8080 (viewers are "
        "spread over them; pushes go to the first)",
    )
    p.add_argument(
        "--spawn",
        action="store_true",
        help="start embedded backends and `livecommerce serve` in a temp dir, "
        "create a host, goods and rooms, and stop everything afterwards",
    )
    p.add_argument("--servers", type=int, default=1, help="with --spawn: server processes (1)")
    p.add_argument("--viewers", type=int, default=1000, help="concurrent viewers (1000)")
    p.add_argument("--rooms", type=int, default=1, help="rooms to spread viewers over (1)")
    p.add_argument("--room-ids", help="watch these existing rooms (comma-separated ids)")
    p.add_argument("--ramp", type=float, default=1000.0, help="new viewers per second (1000)")
    p.add_argument(
        "--duration",
        type=float,
        default=10.0,
        help="seconds to hold the viewers after the ramp (10; at least the push plan)",
    )
    p.add_argument(
        "--workers", type=int, default=0, help="loader processes (default: one per 18,000 viewers)"
    )
    p.add_argument("--pushes", type=int, default=10, help="push rounds, one push per room (10)")
    p.add_argument("--push-interval", type=float, default=1.0, help="seconds between rounds (1)")
    p.add_argument(
        "--churn",
        type=float,
        default=0.0,
        metavar="PCT",
        help="percent of viewers that drop once during the run and resume",
    )
    p.add_argument(
        "--sources",
        help="local source addresses, comma-separated "
        "(default on loopback: 127.0.0.2, 127.0.0.3, ... one per worker)",
    )
    p.add_argument("--host-token", help="host token for creating rooms and pushing (URL mode)")
    p.add_argument(
        "--secret",
        help="the server's security.secret: mint viewer tokens locally "
        "(else one POST /api/tokens/viewer per viewer)",
    )
    p.add_argument(
        "--kill-node-at",
        type=float,
        metavar="S",
        help="with --spawn --servers >= 2: SIGKILL the last server S seconds into "
        "the run (its viewers reconnect elsewhere and resume)",
    )
    p.add_argument("--connect-timeout", type=float, default=15.0)
    p.add_argument("--settle-timeout", type=float, default=30.0)
    p.add_argument("--json", metavar="FILE", help="write the full figures as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="latency distribution + viewers over time")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _validate(args: argparse.Namespace) -> None:
    if args.spawn == bool(args.url):
        raise LoadTestError("give a server URL or --spawn (not both)")
    if args.viewers < 1 or args.rooms < 1 or args.servers < 1:
        raise LoadTestError("--viewers, --rooms and --servers must be at least 1")
    if args.ramp <= 0 or args.push_interval < 0 or args.duration < 0 or args.pushes < 0:
        raise LoadTestError("--ramp must be positive; durations and --pushes non-negative")
    if not 0 <= args.churn <= 100:
        raise LoadTestError("--churn is a percentage: 0..100")
    if args.kill_node_at is not None and (not args.spawn or args.servers < 2):
        raise LoadTestError("--kill-node-at needs --spawn and --servers >= 2")


def run_command(args: argparse.Namespace, settings: Settings, say: Callable[[str], None]) -> int:
    """Run ``livecommerce loadtest``; exit 0 when nothing was missing or duplicated."""
    _validate(args)
    if args.spawn:
        with Cluster(args.servers, log=say) as cluster:
            token = cluster.host_token()
            cfg = _config(args, cluster.urls, secret=cluster.secret, host_token=token)
            cfg.server_pids = cluster.pids
            if args.kill_node_at is not None:
                victim = cluster.servers[-1]

                async def kill() -> None:
                    victim.proc.send_signal(signal.SIGKILL)

                cfg.events.append((args.kill_node_at, kill, f"SIGKILL server {victim.url}"))
            rep = _run(cfg, args, token)
    else:
        secret = args.secret or settings.security.secret or None
        cfg = _config(args, list(args.url), secret=secret, host_token=args.host_token)
        rep = _run(cfg, args, args.host_token)
    print(report.summary_table(rep), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=1) + "\n")
        say(f"wrote {args.json}")
    if args.plot:
        problem = report.write_plot(rep, args.plot)
        say(f"plot not written: {problem}" if problem else f"wrote {args.plot}")
    ok = rep["missing"] == 0 and rep["duplicates"] == 0 and rep["viewers_connected"] > 0
    return 0 if ok else 1


def _config(
    args: argparse.Namespace, urls: list[str], *, secret: str | None, host_token: str | None
) -> LoadConfig:
    return LoadConfig(
        urls=urls,
        viewers=args.viewers,
        ramp=args.ramp,
        duration=args.duration,
        workers=args.workers,
        pushes=args.pushes,
        push_interval=args.push_interval,
        churn=args.churn,
        sources=args.sources.split(",") if args.sources else None,
        secret=secret,
        host_token=host_token,
        connect_timeout=args.connect_timeout,
        settle_timeout=args.settle_timeout,
        progress=not args.quiet,
    )


def _run(cfg: LoadConfig, args: argparse.Namespace, host_token: str | None) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        base = cfg.urls[0].rstrip("/")
        if args.room_ids:
            cfg.rooms = [int(x) for x in args.room_ids.split(",") if x.strip()]
            cfg.goods = await _room_goods(base, cfg.rooms)
        elif host_token:
            made = await create_rooms(base, host_token, args.rooms)
            cfg.rooms = [r for r, _ in made]
            cfg.goods = dict(made)
        else:
            raise LoadTestError("give --host-token (rooms are created) or --room-ids")
        if cfg.pushes and not host_token:
            raise LoadTestError("pushes need --host-token (or --pushes 0)")
        return await run_loadtest(cfg, stream=sys.stderr)

    rep: dict[str, Any] = run_async(main())
    return rep


async def _room_goods(base: str, rooms: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    async with aiohttp.ClientSession() as http:
        for room in rooms:
            async with http.get(f"{base}/api/rooms/{room}") as resp:
                if resp.status != 200:
                    raise LoadTestError(f"room {room}: http {resp.status}")
                body = await resp.json()
            out[room] = [int(g["id"]) for g in body.get("goods", [])]
    return out


def run_async(coro: Any) -> Any:
    """Run ``coro`` on uvloop when available."""
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
