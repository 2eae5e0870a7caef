"""Our side of the timer-lateness benchmark: servers, rooms, viewers, schedules, outcomes.

``Backends`` starts a private PostgreSQL + Valkey (``EmbeddedBackends``, fsync off) in a temp
dir and applies migrations; ``Servers`` runs N ``python -m livecommerce serve --port 0``
processes on them (per-IP connection limit lifted: every viewer comes from loopback; the
development token secret, so ``issue_token(DEV_SECRET, ...)`` tokens are accepted).
``make_rooms`` inserts a host, goods and live rooms straight into PostgreSQL (as the tests'
``make_world`` does); ``Viewers`` holds one ``websockets`` connection per room and notes the
wall-clock receipt time of every ``goods_push`` frame; ``schedule`` POSTs the schedules.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import websockets
from websockets.asyncio.client import ClientConnection

from livecommerce.auth.tokens import anonymous_subject, issue_token
from livecommerce.config import DEV_SECRET
from livecommerce.db import ensure_database
from livecommerce.embedded import EmbeddedBackends
from livecommerce.embedded.processes import pdeathsig
from livecommerce.loadtest.spawn import ServerProcess

START_TIMEOUT = 90.0


class Backends:
    """Embedded PostgreSQL + Valkey in a temp dir, migrated; ``stop()`` removes everything."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="timer-bench-"))
        self.embedded = EmbeddedBackends(self.tmp / "data", fsync=False)
        self.database_url = ""
        self.redis_url = ""  # db 0: ours; the peers use other db indexes

    def start(self) -> None:
        urls = self.embedded.start()
        self.database_url, self.redis_url = urls.database_url, urls.redis_url
        asyncio.run(ensure_database(self.database_url))
        done = subprocess.run(
            [sys.executable, "-m", "livecommerce", "migrate"],
            capture_output=True,
            text=True,
            env=self.server_env(),
            cwd=self.tmp,
            timeout=START_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"livecommerce migrate failed: {done.stderr.strip()}")

    def redis_db_url(self, db: int) -> str:
        return self.redis_url.rsplit("/", 1)[0] + f"/{db}"

    def server_env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("LIVECOMMERCE_")}
        base.pop("PORT", None)
        return {
            **base,
            "PYTHONUNBUFFERED": "1",
            "LIVECOMMERCE_DATABASE_URL": self.database_url,
            "LIVECOMMERCE_REDIS_URL": self.redis_url,
            "LIVECOMMERCE_ROOMS_MAX_CONNECTIONS_PER_IP": "1000000",
            "LIVECOMMERCE_SERVER_LOG_FORMAT": "text",
            "LIVECOMMERCE_SERVER_LOG_LEVEL": "warning",
            "LIVECOMMERCE_SERVER_SHUTDOWN_GRACE_SECONDS": "3",
        }

    def stop(self) -> None:
        self.embedded.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


class Servers:
    """``count`` ``livecommerce serve`` processes; ``stop()`` ends them (SIGTERM, then SIGKILL)."""

    def __init__(self, backends: Backends, count: int) -> None:
        self.backends = backends
        self.count = count
        self.procs: list[ServerProcess] = []

    def start(self) -> list[str]:
        for _ in range(self.count):
            proc = subprocess.Popen(
                [sys.executable, "-m", "livecommerce", "serve", "--port", "0", "--no-migrate"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                env=self.backends.server_env(),
                cwd=self.backends.tmp,
                preexec_fn=pdeathsig(),
            )
            p = ServerProcess(proc)
            self.procs.append(p)
            threading.Thread(target=p.pump, daemon=True).start()
        for p in self.procs:
            p.wait_ready(START_TIMEOUT)
        return self.urls

    @property
    def urls(self) -> list[str]:
        return [p.url for p in self.procs]

    @property
    def pids(self) -> list[int]:
        return [p.proc.pid for p in self.procs]

    def problems(self) -> list[str]:
        return [ln for p in self.procs for ln in p.lines if "Traceback" in ln or "ERROR" in ln]

    def stop(self) -> None:
        for p in self.procs:
            if p.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.proc.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.proc.wait(20)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait()


@dataclass
class Rooms:
    host_token: str
    room_ids: list[int]
    goods_ids: list[int]


async def make_rooms(database_url: str, count: int, label: str) -> Rooms:
    """One host, three goods, ``count`` live rooms with all three attached (straight SQL)."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            host_id = await conn.fetchval(
                "INSERT INTO hosts (name) VALUES ($1 || gen_random_uuid()) RETURNING id",
                f"timer-bench-{label}-",
            )
            goods = [
                await conn.fetchval(
                    "INSERT INTO goods (host_id, title, price_fen, stock, images)"
                    " VALUES ($1, $2, $3, 1000, $4) RETURNING id",
                    host_id,
                    f"Bench goods {i}",
                    990 + i,
                    [f"https://img.example/{i}.jpg"],
                )
                for i in range(3)
            ]
            rows = await conn.fetch(
                "INSERT INTO live_rooms (host_id, title, state, started_at)"
                " SELECT $1, 'Timer bench ' || g, 'live', now() FROM generate_series(1, $2) g"
                " RETURNING id",
                host_id,
                count,
            )
            room_ids = sorted(r["id"] for r in rows)
            await conn.executemany(
                "INSERT INTO room_goods (room_id, goods_id, position) VALUES ($1, $2, $3)",
                [(r, g, i) for r in room_ids for i, g in enumerate(goods)],
            )
    finally:
        await conn.close()
    return Rooms(issue_token(DEV_SECRET, "host", host_id, 24 * 3600), room_ids, goods)


@dataclass(frozen=True, slots=True)
class Receipt:
    room_id: int
    schedule_id: int
    due_ms: int
    ts: int
    recv_ms: float


class Viewers:
    """One lean viewer per room, spread round-robin over the servers."""

    def __init__(self, urls: Sequence[str], room_ids: Sequence[int]) -> None:
        self.targets = [
            (room_id, urls[i % len(urls)].replace("http://", "ws://"))
            for i, room_id in enumerate(room_ids)
        ]
        self.receipts: list[Receipt] = []
        self.closed_early = 0
        self._conns: list[ClientConnection] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def connect(self, concurrency: int = 50) -> None:
        sem = asyncio.Semaphore(concurrency)

        async def one(room_id: int, base: str) -> None:
            token = issue_token(DEV_SECRET, "viewer", anonymous_subject(), 24 * 3600)
            async with sem:
                ws = await websockets.connect(
                    f"{base}/ws?room={room_id}&token={token}",
                    compression=None,
                    ping_interval=None,
                    max_size=2**20,
                    open_timeout=30,
                )
                first = orjson.loads(await asyncio.wait_for(ws.recv(decode=False), 30))
                if first.get("type") != "welcome":
                    raise RuntimeError(f"room {room_id}: expected welcome, got {first}")
            self._conns.append(ws)
            self._tasks.append(asyncio.create_task(self._read(room_id, ws)))

        await asyncio.gather(*(one(r, b) for r, b in self.targets))

    async def _read(self, room_id: int, ws: ClientConnection) -> None:
        try:
            while True:
                raw = await ws.recv(decode=False)
                now = time.time() * 1000
                if b'"goods_push"' not in raw:
                    continue
                frame = orjson.loads(raw)
                if frame.get("type") == "goods_push" and "schedule_id" in frame:
                    self.receipts.append(
                        Receipt(room_id, frame["schedule_id"], frame["due_ms"], frame["ts"], now)
                    )
        except websockets.ConnectionClosed:
            self.closed_early += 1

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await asyncio.gather(*(ws.close() for ws in self._conns), return_exceptions=True)


async def schedule(
    urls: Sequence[str],
    host_token: str,
    items: Sequence[tuple[int, int, str, str]],
    concurrency: int,
) -> dict[str, int]:
    """POST each ``(room_id, goods_id, at_iso, key)``; returns {idempotency key: schedule id}."""
    headers = {"Authorization": f"Bearer {host_token}"}
    ids: dict[str, int] = {}
    queue: asyncio.Queue[tuple[int, tuple[int, int, str, str]]] = asyncio.Queue()
    for n, item in enumerate(items):
        queue.put_nowait((n, item))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as http:

        async def worker() -> None:
            while not queue.empty():
                n, (room_id, goods_id, at, key) = queue.get_nowait()
                body: dict[str, Any] = {"goods_id": goods_id, "at": at, "idempotency_key": key}
                url = f"{urls[n % len(urls)]}/api/rooms/{room_id}/schedules"
                async with http.post(url, json=body) as resp:
                    data = await resp.json()
                    if resp.status != 201:
                        raise RuntimeError(f"POST {url} {body}: {resp.status} {data}")
                    ids[key] = int(data["id"])

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ids


async def outcomes(database_url: str, room_ids: Sequence[int]) -> list[asyncpg.Record]:
    """The ``live_schedules`` rows of these rooms (status, lateness, seq)."""
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(
            "SELECT id, room_id, status, version, lateness_ms, publish_seq, skip_reason,"
            " (extract(epoch FROM due_at) * 1000)::bigint AS due_ms FROM live_schedules"
            " WHERE room_id = ANY($1::bigint[])",
            list(room_ids),
        )
    finally:
        await conn.close()
