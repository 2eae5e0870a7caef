"""Ingestion benchmark: a burst of client events over HTTP batches and viewer sockets.

    .venv/bin/python bench/ingest.py --json bench/results/ingest-YYYY-MM-DD.json

Starts a private embedded PostgreSQL + Valkey and ``serve --workers N``, opens a live room, then
``--viewers`` simulated viewers (half POST /api/events batches, half send ``track`` frames on
their room socket) send ``--events`` events in all, of which 1 % are re-sends of events already
sent (duplicates) and 1 % are invalid (bad UUID / unknown type). A 503 is retried after its
Retry-After. Then it checks PostgreSQL: every acknowledged event stored (``lost`` = acknowledged
ids missing), none stored twice; and measures the **COPY ceiling**: a raw ``COPY`` of the same
number of rows into a plain table shaped like ``analytics_events`` (same indexes) on one
connection, on the same machine in the same run.

Writes ``{events_sent, stored, duplicates_dropped, invalid_rejected, lost, stored_twice,
events_per_s, p99_ack_ms, copy_ceiling_events_per_s, ...}``. ``events_per_s`` is valid events
acknowledged per second of the burst (first send to last acknowledgement).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from flashsale import _prepare  # noqa: E402
from timer_stats import machine  # noqa: E402

from livecommerce.auth.tokens import anonymous_subject, issue_token  # noqa: E402
from livecommerce.config import DEV_SECRET  # noqa: E402
from livecommerce.db import connect  # noqa: E402
from livecommerce.embedded import EmbeddedBackends  # noqa: E402
from livecommerce.growth.analytics.events import COLUMNS  # noqa: E402

TYPES = ("page_view", "goods_impression", "bubble_impression", "bubble_click", "share")


def make_events(n: int, room: int, dup_share: float, bad_share: float, rng: random.Random
                ) -> list[dict[str, Any]]:  # fmt: skip
    """``n`` events for one viewer: valid ones, re-sends of earlier ones, invalid ones."""
    out: list[dict[str, Any]] = []
    now = int(time.time() * 1000)
    for i in range(n):
        r = rng.random()
        if out and r < dup_share:
            out.append(dict(rng.choice(out)))
        elif r < dup_share + bad_share:
            out.append({"id": "not-a-uuid", "type": "page_view"} if i % 2 else
                       {"id": str(uuid.uuid4()), "type": "no_such_type"})  # fmt: skip
        else:
            out.append({
                "id": str(uuid.uuid4()), "type": rng.choice(TYPES),
                "ts": now - rng.randint(0, 5000), "room_id": room,
                "goods_id": rng.randint(1, 3), "push_seq": rng.randint(1, 20),
                "page": "pages/live/live",
            })  # fmt: skip
    return out


class Tally:
    def __init__(self) -> None:
        self.acked: set[str] = set()
        self.sent = 0
        self.duplicates = 0
        self.rejected = 0
        self.retries_503 = 0
        self.failed_batches = 0
        self.ack_ms: list[float] = []
        self.last_ack = 0.0


def _account(t: Tally, batch: list[dict[str, Any]], body: dict[str, Any], started: float) -> None:
    bad = {r["index"] for r in body["rejected"]}
    t.acked.update(e["id"] for i, e in enumerate(batch) if i not in bad)
    t.duplicates += body["duplicates"]
    t.rejected += len(bad)
    t.ack_ms.append((time.perf_counter() - started) * 1000)
    t.last_ack = time.perf_counter()


async def http_viewer(session: aiohttp.ClientSession, url: str, events: list[dict[str, Any]],
                      batch: int, t: Tally) -> None:  # fmt: skip
    headers = {
        "Authorization": f"Bearer {issue_token(DEV_SECRET, 'viewer', anonymous_subject(), 3600)}"
    }
    for i in range(0, len(events), batch):
        chunk = events[i : i + batch]
        t.sent += len(chunk)
        for _attempt in range(50):
            started = time.perf_counter()
            try:
                async with session.post(url + "/api/events", headers=headers,
                                        json={"events": chunk, "sent_at": int(time.time() * 1000)}
                                        ) as resp:  # fmt: skip
                    if resp.status == 503:
                        t.retries_503 += 1
                        await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
                        continue
                    body = await resp.json()
                    assert resp.status == 200, body
                    _account(t, chunk, body, started)
                    break
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.5)
        else:
            t.failed_batches += 1


async def socket_viewer(
    session: aiohttp.ClientSession,
    url: str,
    room: int,
    events: list[dict[str, Any]],
    frame_events: int,
    t: Tally,
) -> None:
    token = issue_token(DEV_SECRET, "viewer", anonymous_subject(), 3600)
    ws_url = url.replace("http://", "ws://") + f"/ws?room={room}&token={token}"
    async with session.ws_connect(ws_url, heartbeat=None, max_msg_size=0) as ws:
        welcome = json.loads((await ws.receive()).data)
        offset = int(welcome["server_time"] - time.time() * 1000)
        chunks = [events[i : i + frame_events] for i in range(0, len(events), frame_events)]
        for n, chunk in enumerate(chunks):
            t.sent += len(chunk)
            ref = f"r{n}"
            while True:
                started = time.perf_counter()
                await ws.send_str(json.dumps({"type": "track", "ref": ref, "offset_ms": offset,
                                              "events": chunk}))  # fmt: skip
                reply: dict[str, Any] = {}
                while reply.get("ref") != ref and reply.get("code") != "rate_limited":
                    msg = await ws.receive()
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        t.failed_batches += 1
                        return
                    reply = json.loads(msg.data)
                if reply.get("type") == "tracked":
                    _account(t, chunk, reply, started)
                    break
                t.retries_503 += 1  # unavailable (buffer full) or rate limited: back off, resend
                await asyncio.sleep(0.5)
            await asyncio.sleep(0.11)  # within rooms.messages_per_second (10/s)


async def copy_ceiling(db: str, rows: int) -> float:
    """Raw COPY rows/s of ``rows`` rows into a plain table shaped like analytics_events."""
    conn = await connect(db)
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_copy")
        await conn.execute("CREATE TABLE bench_copy (LIKE analytics_events INCLUDING ALL)")
        # asyncpg's binary COPY has no jsonb encoder (the writer stages JSON as text too).
        await conn.execute("ALTER TABLE bench_copy ALTER variants TYPE text, ALTER props TYPE text")
        await conn.execute("CREATE INDEX ON bench_copy (room_id, occurred_at)")
        await conn.execute("CREATE INDEX ON bench_copy (goods_id, occurred_at)")
        now = dt.datetime.now(dt.UTC)
        records = [
            (uuid.uuid4(), "page_view", now, now, "client", False, "viewer:x", None, 1,
             i % 3 + 1, i % 20, None, None, "pages/live/live", None, None)
            for i in range(rows)
        ]  # fmt: skip
        started = time.perf_counter()
        for i in range(0, rows, 5000):
            await conn.copy_records_to_table("bench_copy", records=records[i : i + 5000],
                                             columns=COLUMNS)  # fmt: skip
        elapsed = time.perf_counter() - started
        await conn.execute("DROP TABLE bench_copy")
        return rows / elapsed
    finally:
        await conn.close()


async def run(args: argparse.Namespace, url: str, db: str) -> dict[str, Any]:
    conn = await connect(db)
    try:
        host = await conn.fetchval("INSERT INTO hosts (name) VALUES ('bench') RETURNING id")
        room = await conn.fetchval(
            "INSERT INTO live_rooms (host_id, title, state, started_at) VALUES ($1, 'bench',"
            " 'live', now()) RETURNING id",
            host,
        )
    finally:
        await conn.close()
    rng = random.Random(20261130)
    per_viewer = args.events // args.viewers
    half = args.viewers // 2
    plans = [make_events(per_viewer, room, 0.01, 0.01, rng) for _ in range(args.viewers)]
    t = Tally()
    connector = aiohttp.TCPConnector(limit=args.connections)
    # Sockets on connections of their own: an upgrade on a keep-alive connection that carried
    # HTTP first is refused by the lean path (503, docs/protocol.md).
    ws_connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(60)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as s,
        aiohttp.ClientSession(connector=ws_connector, timeout=timeout) as ws_session,
    ):
        started = time.perf_counter()
        await asyncio.gather(
            *(http_viewer(s, url, plans[i], args.batch, t) for i in range(half)),
            *(socket_viewer(ws_session, url, room, plans[i], args.frame_events, t)
              for i in range(half, args.viewers)),
        )  # fmt: skip
    burst = max(t.last_ack - started, 1e-9)
    conn = await connect(db)
    try:
        stored_rows = await conn.fetchval(
            "SELECT count(*) FROM analytics_events WHERE source = 'client'"
        )
        distinct = await conn.fetchval(
            "SELECT count(DISTINCT event_id) FROM analytics_events WHERE source = 'client'"
        )
        stored_ids = {str(r["event_id"]) for r in await conn.fetch(
            "SELECT event_id FROM analytics_events WHERE source = 'client'")}  # fmt: skip
    finally:
        await conn.close()
    lost = len(t.acked - stored_ids)
    ceiling = await copy_ceiling(db, len(t.acked))
    acks = sorted(t.ack_ms)
    eps = len(t.acked) / burst
    return {
        "events_sent": t.sent,
        "stored": stored_rows,
        "stored_twice": stored_rows - distinct,
        "duplicates_dropped": t.duplicates,
        "invalid_rejected": t.rejected,
        "lost": lost,
        "failed_batches": t.failed_batches,
        "retries_503_or_rate_limited": t.retries_503,
        "events_per_s": round(eps),
        "p99_ack_ms": round(acks[int(len(acks) * 0.99) - 1], 1) if acks else None,
        "p50_ack_ms": round(acks[len(acks) // 2], 1) if acks else None,
        "copy_ceiling_events_per_s": round(ceiling),
        "share_of_ceiling": round(eps / ceiling, 3),
        "burst_seconds": round(burst, 2),
        "viewers": args.viewers,
        "http_batch_events": args.batch,
        "socket_frame_events": args.frame_events,
        "workers": args.workers,
        "date": dt.date.today().isoformat(),
        "machine": machine(),
        "note": "loader, server, PostgreSQL and Valkey share the machine",
    }


def start_server(db: str, redis: str, workers: int, viewers: int) -> tuple[Any, str]:
    """``serve --workers N`` on the embedded backends, admitting every viewer socket."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECOMMERCE_")}
    env.update(
        LIVECOMMERCE_DATABASE_URL=db,
        LIVECOMMERCE_REDIS_URL=redis,
        LIVECOMMERCE_SERVER_LOG_LEVEL="warning",
        LIVECOMMERCE_DATABASE_POOL_MAX_SIZE="20",
        LIVECOMMERCE_ROOMS_MAX_CONNECTIONS_PER_IP=str(viewers * 2),
        LIVECOMMERCE_SERVER_MAX_UNFINISHED_HEADS_PER_IP=str(viewers * 2),
        PYTHONUNBUFFERED="1",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "livecommerce", "serve", "--port", "0", "--workers", str(workers)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if "listening on http://" in line and (workers == 1 or "workers listening" in line):
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe open
            return proc, line.split("listening on ", 1)[1].strip()
    proc.kill()
    raise SystemExit("server did not start")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--json", required=True, help="write the result here")
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--viewers", type=int, default=2_000)
    p.add_argument("--batch", type=int, default=100, help="events per HTTP batch")
    p.add_argument("--frame-events", type=int, default=10, help="events per track frame (4 KiB)")
    p.add_argument("--connections", type=int, default=200, help="HTTP connection cap")
    p.add_argument("--workers", type=int, default=2, help="server processes")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBackends(tmp, fsync=False) as urls:
        db = urls.database_url
        asyncio.run(_prepare(db))
        proc, url = start_server(db, urls.redis_url, args.workers, args.viewers)
        try:
            result = asyncio.run(run(args, url, db))
        finally:
            proc.terminate()
            proc.wait(30)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
