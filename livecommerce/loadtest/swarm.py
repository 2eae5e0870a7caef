"""One load-generating worker process: thousands of lean viewers on one event loop.

The coordinator (``runner``) starts several of these so that each stays under the per-process
descriptor limit (hard RLIMIT_NOFILE 20,000 here) and each uses its own loopback source address
(its own ephemeral-port range). It talks to the worker over a ``multiprocessing`` pipe:

* worker -> coordinator: ``("progress", {...})`` four times a second, ``("settled", n_behind)``,
  ``("result", {...})``, ``("fatal", message)``;
* coordinator -> worker: ``("run", {"churn_window": s})``, ``("settle", {"cuts", "timeout"})``,
  ``("result", {"cuts"})``, ``("stop", None)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import resource
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import quote

from livecommerce.loadtest.wsclient import ConnectFailure, Stats, Viewer, open_viewer

PROGRESS_SECONDS = 0.25
MAX_RECONNECT_ATTEMPTS = 30  # with backoff capped at 3 s: gives up after ~1 min, like a phone


@dataclass
class WorkerPlan:
    index: int
    targets: list[tuple[str, int, str]]  # (host, port, path) of each server's WebSocket endpoint
    viewers: list[tuple[int, int]]  # (room id, target index) per viewer
    source: str | None = None  # local address to connect from (127.0.0.x)
    secret: str | None = None  # mint viewer tokens locally with the server's secret...
    token_url: str | None = None  # ...or fetch one per viewer: POST {token_url}
    ramp_per_s: float = 1000.0  # this worker's share of --ramp
    connect_timeout: float = 15.0
    mode: str = "livecommerce"
    churn_pct: float = 0.0
    max_inflight: int = 256
    seed: int = field(default_factory=lambda: random.randrange(2**32))


def raise_nofile() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard one; returns (soft, hard) now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def worker_main(plan: WorkerPlan, conn: Connection) -> None:
    """Process entry point."""
    raise_nofile()
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(Swarm(plan, conn).run())
    except Exception as exc:
        with contextlib.suppress(OSError):
            conn.send(("fatal", f"worker {plan.index}: {type(exc).__name__}: {exc}"))
        raise
    finally:
        loop.close()


class Swarm:
    def __init__(self, plan: WorkerPlan, conn: Connection) -> None:
        self.plan = plan
        self.conn = conn
        self.stats = Stats()
        self.rng = random.Random(plan.seed)
        self.viewers = [
            Viewer(plan.index * 1_000_000 + i, room, target, self.stats, self._lost, mode=plan.mode)
            for i, (room, target) in enumerate(plan.viewers)
        ]
        self.connecting = 0
        self.reconnecting = 0
        self.lost = 0  # viewers that could not get back after a disconnect
        self.stopping = False
        self.inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.tasks: set[asyncio.Task[None]] = set()
        self.http: Any = None

    # ------------------------------------------------------------------ plumbing

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _readable(self) -> None:
        while self.conn.poll():
            try:
                self.inbox.put_nowait(self.conn.recv())
            except EOFError:
                self.inbox.put_nowait(("stop", None))
                asyncio.get_running_loop().remove_reader(self.conn.fileno())
                return

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.conn.fileno(), self._readable)
        if self.plan.token_url:
            import aiohttp

            self.http = aiohttp.ClientSession()
        self._spawn(self._ramp())
        self._spawn(self._progress())
        try:
            while True:
                cmd, arg = await self.inbox.get()
                if cmd == "stop":
                    break
                if cmd == "run":
                    self._schedule_churn(float(arg["churn_window"]))
                elif cmd == "settle":
                    self._spawn(self._settle(arg["cuts"], float(arg["timeout"])))
                elif cmd == "result":
                    self.conn.send(("result", self.result(arg["cuts"])))
        finally:
            self.stopping = True
            loop.remove_reader(self.conn.fileno())
            for task in list(self.tasks):
                task.cancel()
            for v in self.viewers:
                v.drop()
            await asyncio.sleep(0)
            if self.http is not None:
                await self.http.close()

    # ------------------------------------------------------------------ connecting

    async def _token(self) -> str:
        if self.plan.secret:
            from livecommerce.auth.tokens import anonymous_subject, issue_token

            return issue_token(self.plan.secret, "viewer", anonymous_subject(), 7 * 86400)
        assert self.http is not None
        assert self.plan.token_url
        async with self.http.post(self.plan.token_url) as resp:
            if resp.status != 201:
                raise ConnectFailure(f"token: http {resp.status}")
            body = await resp.json()
            return str(body["token"])

    def _query(self, v: Viewer) -> str:
        if self.plan.mode == "socketio":
            return f"EIO=4&transport=websocket&room={v.room}"
        q = f"room={v.room}&token={quote(v.token)}"
        if v.welcomes and v.last >= 0:
            q += f"&last_seq={v.last}&epoch={quote(v.epoch)}"
        return q

    async def _open(self, v: Viewer) -> None:
        if not v.token and self.plan.mode != "socketio":
            v.token = await self._token()
        host, port, path = self.plan.targets[v.target]
        await open_viewer(
            v, host, port, path, self._query(v), self.plan.source, self.plan.connect_timeout
        )

    async def _ramp(self) -> None:
        gate = asyncio.Semaphore(self.plan.max_inflight)
        start = time.monotonic()
        rate = max(self.plan.ramp_per_s, 1e-3)
        for i, v in enumerate(self.viewers):
            if self.stopping:
                return
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await gate.acquire()
            self.connecting += 1
            self._spawn(self._first_connect(v, gate))

    async def _first_connect(self, v: Viewer, gate: asyncio.Semaphore) -> None:
        try:
            await self._open(v)
        except ConnectFailure as exc:
            self.stats.failures[exc.reason] += 1
        except OSError as exc:
            self.stats.failures[f"{type(exc).__name__}: {exc}"] += 1
        finally:
            self.connecting -= 1
            gate.release()

    def _lost(self, v: Viewer, reason: str) -> None:
        """A live viewer was disconnected by the server or the network: reconnect and resume."""
        if self.stopping:
            return
        self.stats.disconnects[reason] += 1
        self.reconnecting += 1
        self._spawn(self._reconnect(v, move=True, first_delay=None))

    async def _reconnect(self, v: Viewer, *, move: bool, first_delay: float | None) -> None:
        """Reconnect with last_seq/epoch (full-jitter backoff, rotating over the servers)."""
        try:
            backoff = 0.1
            for attempt in range(MAX_RECONNECT_ATTEMPTS):
                if attempt == 0 and first_delay is not None:
                    await asyncio.sleep(first_delay)
                elif attempt == 0 and v.close_code in (1012, 4408):
                    await asyncio.sleep(self.rng.uniform(0, 0.05))  # protocol: at once
                else:
                    await asyncio.sleep(self.rng.uniform(0, backoff))
                    backoff = min(backoff * 2, 3.0)
                # A failed attempt moves on to the next server (its node may be gone), even for
                # a churn drop, which first retries where it was.
                if attempt > 0 or (move and v.close_code != 4408):
                    v.target = (v.target + 1) % len(self.plan.targets)
                if self.stopping:
                    return
                try:
                    await self._open(v)
                    return
                except ConnectFailure as exc:
                    self.stats.disconnects["reconnect failed: " + exc.reason] += 1
            self.lost += 1
        finally:
            self.reconnecting -= 1

    def _schedule_churn(self, window: float) -> None:
        """Drop ``churn_pct`` % of the live viewers once each, spread over ``window`` seconds."""
        pct = self.plan.churn_pct
        if pct <= 0:
            return
        live = [v for v in self.viewers if v.alive]
        chosen = self.rng.sample(live, k=min(len(live), round(len(live) * pct / 100.0)))
        loop = asyncio.get_running_loop()
        for v in chosen:
            loop.call_later(self.rng.uniform(0, window), self._churn_one, v)

    def _churn_one(self, v: Viewer) -> None:
        if self.stopping or not v.alive:
            return
        v.drop()
        self.stats.disconnects["churn (forced drop)"] += 1
        self.reconnecting += 1
        self._spawn(self._reconnect(v, move=False, first_delay=self.rng.uniform(0.05, 0.5)))

    # ------------------------------------------------------------------ reporting

    async def _progress(self) -> None:
        while True:
            self.conn.send(
                (
                    "progress",
                    {
                        "connected": self.stats.alive,
                        "ever": self.stats.ever,
                        "connecting": self.connecting,
                        "reconnecting": self.reconnecting,
                        "failed": sum(self.stats.failures.values()),
                        "deliveries": self.stats.deliveries,
                    },
                )
            )
            await asyncio.sleep(PROGRESS_SECONDS)

    async def _settle(self, cuts: dict[int, int], wait_s: float) -> None:
        """Answer once every live viewer has seen its room's cut seq (or at the timeout)."""
        deadline = time.monotonic() + wait_s
        behind = 0
        while time.monotonic() < deadline:
            behind = (
                sum(1 for v in self.viewers if v.welcomes and v.last < cuts.get(v.room, -1))
                + self.reconnecting
            )
            if behind == 0:
                break
            await asyncio.sleep(0.02)
        self.conn.send(("settled", behind))

    def result(self, cuts: dict[int, int]) -> dict[str, Any]:
        """The worker's figures; a viewer's tail (last, cut] it never received counts as missing."""
        missing = dups = with_missing = with_dups = 0
        for v in self.viewers:
            if not v.welcomes:
                continue
            m = v.missing + max(0, cuts.get(v.room, v.last) - v.last)
            missing += m
            dups += v.dups
            with_missing += m > 0
            with_dups += v.dups > 0
        usage = resource.getrusage(resource.RUSAGE_SELF)
        s = self.stats
        return {
            "viewers": len(self.viewers),
            "connected": sum(1 for v in self.viewers if v.alive),
            "ever_connected": sum(1 for v in self.viewers if v.welcomes),
            "failures": dict(s.failures),
            "disconnects": dict(s.disconnects),
            "missing": missing,
            "duplicates": dups,
            "viewers_with_missing": with_missing,
            "viewers_with_duplicates": with_dups,
            "lost": self.lost,
            "resumed": s.resumed,
            "resynced": s.resynced,
            "replayed": s.replayed,
            "deliveries": s.deliveries,
            "frames": s.frames,
            "latency": s.latency.to_dict(),
            "connect": s.connect.to_dict(),
            "push_max": [[r, q, ms] for (r, q), ms in s.push_max.items()],
            "push_count": [[r, q, n] for (r, q), n in s.push_count.items()],
            "cpu_s": usage.ru_utime + usage.ru_stime,
        }
