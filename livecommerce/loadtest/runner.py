"""The load-test coordinator: workers, ramp, push plan, churn, settle, and the merged figures.

Phases: start the worker processes (each < ~19,000 sockets, each from its own loopback source
address) -> ramp to ``viewers`` at ``ramp``/s -> idle second (server RSS per viewer) -> run:
``pushes`` rounds of one push per room every ``push_interval`` s while ``churn`` % of the
viewers drop and resume -> settle (every live viewer has the last push) -> results.

A push's latency is measured per delivery from the frame's ``ts`` (Redis server time at publish)
to its receipt; the *last-viewer* latency of a push is the slowest delivery of that push.
``deliveries_per_s`` = push deliveries / the summed last-viewer latencies (the fan-out rate while
a push is in flight).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import multiprocessing
import os
import resource
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from livecommerce.loadtest.hist import Histogram
from livecommerce.loadtest.report import build as build_report
from livecommerce.loadtest.spawn import cpu_seconds, pids_listening, rss_kib
from livecommerce.loadtest.swarm import WorkerPlan, worker_main

MAX_SOCKETS_PER_WORKER = 18_000
PROGRESS_EVERY = 0.25


@dataclass
class LoadConfig:
    urls: list[str]  # http(s) base URL of each server; viewers are spread round-robin
    viewers: int = 1000
    rooms: list[int] = field(default_factory=list)  # room ids (created by the caller)
    goods: dict[int, list[int]] = field(default_factory=dict)  # room -> goods to push
    ramp: float = 1000.0  # new viewers per second, all workers together
    duration: float = 10.0  # run phase, at least pushes * push_interval
    workers: int = 0  # 0: enough for MAX_SOCKETS_PER_WORKER each
    pushes: int = 10  # rounds: one push to every room per round
    push_interval: float = 1.0
    churn: float = 0.0  # percent of viewers dropped once (and resumed) during the run
    sources: list[str] | None = None  # local source addresses; default 127.0.0.2.. on loopback
    secret: str | None = None  # mint viewer tokens locally; else POST /api/tokens/viewer
    host_token: str | None = None
    mode: str = "livecommerce"  # or "socketio" (the comparison benchmark)
    server_pids: list[int] | None = None  # None: look for local listeners in /proc
    connect_timeout: float = 15.0
    settle_timeout: float = 30.0
    progress: bool = True
    # Extra push body fields for round k (e.g. a bubble experiment in every other round)
    push_extra: Callable[[int], dict[str, Any]] | None = None
    # (seconds into the run phase, action, label): e.g. kill a node mid-run
    events: list[tuple[float, Callable[[], Coroutine[Any, Any, None]], str]] = field(
        default_factory=list
    )


class LoadTestError(Exception):
    """The load test could not run (bad target, workers died); one line."""


def _target(url: str, mode: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "ws"):
        raise LoadTestError(f"{url}: only http:// or ws:// URLs (plain TCP) are supported")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    path = "/socket.io/" if mode == "socketio" else "/ws"
    return host, port, path


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def plan_workers(cfg: LoadConfig) -> list[WorkerPlan]:
    targets = [_target(u, cfg.mode) for u in cfg.urls]
    n = cfg.workers or max(1, math.ceil(cfg.viewers / MAX_SOCKETS_PER_WORKER))
    if n > 1 and cfg.viewers // n > 19_000:
        raise LoadTestError(
            f"{cfg.viewers // n} sockets per worker is over the 20,000 descriptor cap: "
            "use more --workers"
        )
    loopback = all(_is_loopback(t[0]) for t in targets)
    sources = cfg.sources or ([f"127.0.0.{2 + i}" for i in range(n)] if loopback else [])
    if not cfg.rooms:
        raise LoadTestError("no rooms to watch")
    plans = []
    for w in range(n):
        mine = range(w, cfg.viewers, n)
        plans.append(
            WorkerPlan(
                index=w,
                targets=targets,
                viewers=[(cfg.rooms[i % len(cfg.rooms)], i % len(targets)) for i in mine],
                source=sources[w % len(sources)] if sources else None,
                secret=cfg.secret,
                token_url=None if cfg.secret else cfg.urls[0].rstrip("/") + "/api/tokens/viewer",
                ramp_per_s=cfg.ramp / n,
                connect_timeout=cfg.connect_timeout,
                mode=cfg.mode,
                churn_pct=cfg.churn,
            )
        )
    return plans


class Workers:
    """The worker processes and their pipes, read from the event loop."""

    def __init__(self, plans: list[WorkerPlan]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for plan in plans:
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(plan, theirs), daemon=True)
            proc.start()
            theirs.close()
            self.conns.append(ours)
            self.procs.append(proc)
        self.progress: list[dict[str, int]] = [{} for _ in plans]
        self.replies: list[asyncio.Queue[tuple[str, Any]]] = [asyncio.Queue() for _ in plans]
        self.fatal: str | None = None
        self.ready = asyncio.Event()  # every worker reported (or one died)
        loop = asyncio.get_running_loop()
        for i, conn in enumerate(self.conns):
            loop.add_reader(conn.fileno(), self._read, i)

    def _read(self, i: int) -> None:
        conn = self.conns[i]
        try:
            while conn.poll():
                kind, body = conn.recv()
                if kind == "progress":
                    self.progress[i] = body
                    if all(self.progress):
                        self.ready.set()
                elif kind == "fatal":
                    self.fatal = str(body)
                    self.ready.set()
                else:
                    self.replies[i].put_nowait((kind, body))
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(conn.fileno())
            if self.fatal is None:
                self.fatal = f"worker {i} exited (code {self.procs[i].exitcode})"
            self.ready.set()
            self.replies[i].put_nowait(("dead", None))

    def total(self, key: str) -> int:
        return sum(p.get(key, 0) for p in self.progress)

    def send_all(self, cmd: str, arg: Any) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send((cmd, arg))

    async def ask_all(self, cmd: str, arg: Any, wait_s: float) -> list[Any]:
        self.send_all(cmd, arg)
        out = []
        for q in self.replies:
            kind, body = await asyncio.wait_for(q.get(), wait_s)
            if kind == "dead":
                raise LoadTestError(self.fatal or "a worker died")
            out.append(body)
        return out

    def close(self) -> None:
        self.send_all("stop", None)
        loop = asyncio.get_running_loop()
        for conn in self.conns:
            with contextlib.suppress(Exception):
                loop.remove_reader(conn.fileno())
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        for conn in self.conns:
            conn.close()


class Pusher:
    """Host pushes over REST (or the socket.io server's /push), one room at a time."""

    def __init__(self, cfg: LoadConfig) -> None:
        self.cfg = cfg
        headers = {"Authorization": f"Bearer {cfg.host_token}"} if cfg.host_token else {}
        self.http = aiohttp.ClientSession(headers=headers)
        self.pushed: list[tuple[int, int]] = []
        self.errors: Counter[str] = Counter()

    async def push(self, room: int, k: int) -> None:
        base = self.cfg.urls[0].rstrip("/")
        if self.cfg.mode == "socketio":
            url, body = f"{base}/push?room={room}", {}
        else:
            goods = self.cfg.goods.get(room) or []
            if not goods:
                raise LoadTestError(f"room {room}: no goods to push")
            url, body = f"{base}/api/rooms/{room}/push", {"goods_id": goods[k % len(goods)]}
            if self.cfg.push_extra is not None:
                body.update(self.cfg.push_extra(k))
        try:
            async with self.http.post(url, json=body) as resp:
                data = await resp.json(content_type=None)
                if resp.status not in (200, 201):
                    self.errors[f"http {resp.status}: {data}"] += 1
                    return
                self.pushed.append((room, int(data["seq"])))
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.errors[f"{type(exc).__name__}: {exc}"] += 1

    async def close(self) -> None:
        await self.http.close()


class Progress:
    """A one-line progress bar on a terminal; a line every few seconds otherwise."""

    def __init__(self, enabled: bool, stream: Any) -> None:
        self.enabled = enabled
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.last_line = 0.0

    def show(self, phase: str, done: int, total: int, extra: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        frac = min(1.0, done / total) if total else 1.0
        bar = "#" * int(frac * 30) + "." * (30 - int(frac * 30))
        line = f"{phase:<8} [{bar}] {done}/{total} {extra}"
        if self.tty:
            self.stream.write("\r" + line[:150].ljust(150))
            self.stream.flush()
        elif now - self.last_line >= 3.0:
            self.stream.write(line + "\n")
            self.stream.flush()
            self.last_line = now

    def end(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


async def run_loadtest(cfg: LoadConfig, *, stream: Any = None) -> dict[str, Any]:
    """Run one load test and return the merged figures (see report.build)."""
    import sys

    out = stream or sys.stderr
    plans = plan_workers(cfg)
    pids = cfg.server_pids
    if pids is None:
        pids = []
        for u in cfg.urls:
            host, port, _ = _target(u, cfg.mode)
            if _is_loopback(host):
                pids += pids_listening(port)
    cpu0 = {pid: cpu_seconds(pid) for pid in pids}
    rss0 = {pid: rss_kib(pid) for pid in pids}
    progress = Progress(cfg.progress, out)
    timeline: list[tuple[float, int]] = []
    workers = Workers(plans)
    await asyncio.wait_for(workers.ready.wait(), 120)  # up (imports done) and ramping
    t0 = time.monotonic()
    pusher = Pusher(cfg)
    try:
        # ---- ramp
        ramp_deadline = t0 + cfg.viewers / max(cfg.ramp, 1e-3) + cfg.connect_timeout + 60
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            if workers.fatal:
                raise LoadTestError(workers.fatal)
            ever, failed = workers.total("ever"), workers.total("failed")
            connected = workers.total("connected")
            timeline.append((round(time.monotonic() - t0, 2), connected))
            rate = ever / max(1e-3, time.monotonic() - t0)
            progress.show(
                "ramp",
                ever + failed,
                cfg.viewers,
                f"connected {connected} failed {failed} {rate:,.0f}/s",
            )
            if ever + failed >= cfg.viewers and workers.total("connecting") == 0:
                break
            if time.monotonic() > ramp_deadline:
                break
        ramp_s = time.monotonic() - t0
        connected_after_ramp = workers.total("connected")
        await asyncio.sleep(1.0)  # idle: let the server settle before reading its memory
        rss1 = {pid: rss_kib(pid) for pid in pids}

        # ---- run: pushes, churn, events
        run_s = max(cfg.duration, cfg.pushes * cfg.push_interval)
        workers.send_all("run", {"churn_window": run_s * 0.8})
        run_start = time.monotonic()
        for at, action, label in cfg.events:
            asyncio.get_running_loop().call_later(at, _fire, action, label, progress)

        async def push_plan() -> None:
            for k in range(cfg.pushes):
                due = run_start + k * cfg.push_interval
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                await asyncio.gather(*(pusher.push(room, k) for room in cfg.rooms))

        plan_task = asyncio.create_task(push_plan())
        while time.monotonic() - run_start < run_s or not plan_task.done():
            await asyncio.sleep(PROGRESS_EVERY)
            if workers.fatal:
                raise LoadTestError(workers.fatal)
            connected = workers.total("connected")
            timeline.append((round(time.monotonic() - t0, 2), connected))
            progress.show(
                "run",
                len(pusher.pushed),
                cfg.pushes * len(cfg.rooms),
                f"pushes; connected {connected} "
                f"reconnecting {workers.total('reconnecting')} "
                f"deliveries {workers.total('deliveries')}",
            )
        await plan_task

        # ---- settle and collect
        cuts: dict[int, int] = {}
        for room, seq in pusher.pushed:
            cuts[room] = max(cuts.get(room, 0), seq)
        behind = await workers.ask_all(
            "settle", {"cuts": cuts, "timeout": cfg.settle_timeout}, cfg.settle_timeout + 30
        )
        progress.end()
        results = await workers.ask_all("result", {"cuts": cuts}, 60)
        cpu1 = {pid: cpu_seconds(pid) for pid in pids}
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return build_report(
            cfg=cfg,
            results=results,
            pushed=pusher.pushed,
            push_errors=dict(pusher.errors),
            behind=sum(behind),
            ramp_s=ramp_s,
            connected_after_ramp=connected_after_ramp,
            timeline=timeline,
            rss=(rss0, rss1),
            cpu=(cpu0, cpu1),
            workers=len(plans),
            sources=sorted({p.source for p in plans if p.source}),
            coordinator_cpu_s=usage.ru_utime + usage.ru_stime,
        )
    finally:
        progress.end()
        await pusher.close()
        workers.close()


def _fire(action: Callable[[], Coroutine[Any, Any, None]], label: str, progress: Progress) -> None:
    progress.end()
    if progress.enabled:
        progress.stream.write(f"event: {label}\n")
    _EVENTS.add(task := asyncio.get_running_loop().create_task(action()))
    task.add_done_callback(_EVENTS.discard)


_EVENTS: set[asyncio.Task[None]] = set()


def merge_histograms(dicts: list[dict[str, Any]]) -> Histogram:
    h = Histogram()
    for d in dicts:
        h.merge(Histogram.from_dict(d))
    return h


def machine() -> dict[str, Any]:
    """Cores and memory of this machine (stamped on every result)."""
    mem_kib = 0
    with contextlib.suppress(OSError):
        for line in open("/proc/meminfo").read().splitlines():  # noqa: SIM115
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {"cores": os.cpu_count(), "ram_gib": round(mem_kib / 1024 / 1024, 1)}
