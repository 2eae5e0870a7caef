"""Ingestion benchmark: a burst of client events over HTTP batches and viewer sockets.

    .venv/bin/python bench/ingest.py --json bench/results/ingest-YYYY-MM-DD.json

Starts a private embedded PostgreSQL + Valkey and ``serve --workers N``, waits for the servers
to go idle (start-up work done), opens a live room; ``--loaders`` loader processes make their
viewers' events, encode them and join their sockets, then all start the burst at one wall-clock
time. ``--viewers`` simulated viewers (half POST /api/events batches, half send ``track`` frames
on their room socket) send ``--events`` events in all, of which 1 % are re-sends of events
already sent (duplicates) and 1 % are invalid (bad UUID / unknown type). A 503 is retried after
its Retry-After. Then it checks PostgreSQL: every acknowledged event stored (``lost`` =
acknowledged ids missing), none stored twice; and measures the **COPY ceiling**: a raw ``COPY``
of the same number of rows into a plain table shaped like ``analytics_events`` (same indexes)
on one connection, best of 3, on the same machine in the same run.

Writes ``{events_sent, stored, duplicates_dropped, invalid_rejected, lost, stored_twice,
events_per_s, p99_ack_ms, copy_ceiling_events_per_s, ...}``. ``events_per_s`` is valid events
acknowledged per second of the burst (start to last acknowledgement). ``cpu_seconds_during_burst``
splits the CPU of the servers, PostgreSQL, Valkey and loaders from the whole machine's (other
work on a shared machine), and ``cpu_us_per_event`` / ``cpu_bound_events_per_s`` say what the
burst costs and would reach with the cores to itself. ``--py-spy DIR`` records the servers.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson

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
    """One loader process's view of the burst (wall-clock times, comparable across processes)."""

    def __init__(self) -> None:
        self.acked: list[str] = []
        self.sent = 0
        self.duplicates = 0
        self.rejected = 0
        self.retries_503 = 0
        self.failed_batches = 0
        self.ack_ms: list[float] = []
        self.last_ack = 0.0

    def account(self, batch: list[dict[str, Any]], body: dict[str, Any], started: float) -> None:
        bad = {r["index"] for r in body["rejected"]}
        self.acked.extend(e["id"] for i, e in enumerate(batch) if i not in bad)
        self.duplicates += body["duplicates"]
        self.rejected += len(bad)
        now = time.time()
        self.ack_ms.append((now - started) * 1000)
        self.last_ack = max(self.last_ack, now)


async def http_viewer(session: aiohttp.ClientSession, url: str, events: list[dict[str, Any]],
                      batch: int, t: Tally) -> None:  # fmt: skip
    headers = {
        "Authorization": f"Bearer {issue_token(DEV_SECRET, 'viewer', anonymous_subject(), 3600)}",
        "Content-Type": "application/json",
    }
    # Encoded before the burst; only `sent_at` is written at send time.
    chunks = [events[i : i + batch] for i in range(0, len(events), batch)]
    bodies = [orjson.dumps(c) for c in chunks]
    for chunk, encoded in zip(chunks, bodies, strict=True):
        t.sent += len(chunk)
        for _attempt in range(50):
            started = time.time()
            data = b'{"sent_at":%d,"events":%s}' % (int(started * 1000), encoded)
            try:
                async with session.post(url + "/api/events", headers=headers, data=data) as resp:
                    if resp.status == 503:
                        t.retries_503 += 1
                        await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
                        continue
                    body = orjson.loads(await resp.read())
                    assert resp.status == 200, body
                    t.account(chunk, body, started)
                    break
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.5)
        else:
            t.failed_batches += 1


async def socket_viewer(
    ws: aiohttp.ClientWebSocketResponse,
    offset: int,
    events: list[dict[str, Any]],
    frame_events: int,
    t: Tally,
) -> None:
    """Sends ``events`` as ``track`` frames on an open, welcomed socket, as the client library
    does: a frame whenever events are ready (here: one per 0.1 s, within
    ``rooms.messages_per_second``) without waiting for the previous answer; each unanswered
    frame is kept and sent again (same event ids) if its answer is an error or does not come."""
    chunks = [events[i : i + frame_events] for i in range(0, len(events), frame_events)]
    frames = {
        f"r{n}": b'{"type":"track","ref":"r%d","offset_ms":%d,"events":%s}'
        % (n, offset, orjson.dumps(c))
        for n, c in enumerate(chunks)
    }
    chunk_of = {f"r{n}": c for n, c in enumerate(chunks)}
    sent_at: dict[str, float] = {}
    t.sent += len(events)

    async def send(ref: str) -> None:
        await asyncio.sleep(max(0.0, 0.1 - (time.time() - max(sent_at.values(), default=0.0))))
        sent_at[ref] = time.time()
        await ws.send_str(frames[ref].decode())

    async def sender(refs: list[str]) -> None:
        for ref in refs:
            await send(ref)

    pending = set(frames)
    writer = asyncio.create_task(sender(list(frames)))
    try:
        while pending:
            try:
                msg = await ws.receive(timeout=30)
            except TimeoutError:  # an answer that never came (a dropped frame): send again
                t.retries_503 += len(pending)
                await writer
                writer = asyncio.create_task(sender(sorted(pending)))
                continue
            if msg.type != aiohttp.WSMsgType.TEXT:
                t.failed_batches += len(pending)
                return
            reply = orjson.loads(msg.data)
            ref = reply.get("ref")
            if reply.get("type") == "tracked" and ref in pending:
                pending.discard(ref)
                t.account(chunk_of[ref], reply, sent_at[ref])
            elif reply.get("type") == "error" and ref in pending:
                t.retries_503 += 1  # unavailable (buffer full): back off, send it again
                await asyncio.sleep(0.5)
                await writer
                writer = asyncio.create_task(sender([ref]))
    finally:
        writer.cancel()


async def socket_viewer_waiting(
    ws: aiohttp.ClientWebSocketResponse,
    offset: int,
    events: list[dict[str, Any]],
    frame_events: int,
    t: Tally,
) -> None:
    """``--socket-mode waiting``: each ``track`` frame sent after the previous one's answer."""
    chunks = [events[i : i + frame_events] for i in range(0, len(events), frame_events)]
    frames = [
        b'{"type":"track","ref":"r%d","offset_ms":%d,"events":%s}' % (n, offset, orjson.dumps(c))
        for n, c in enumerate(chunks)
    ]
    for n, (chunk, frame) in enumerate(zip(chunks, frames, strict=True)):
        t.sent += len(chunk)
        ref = f"r{n}"
        while True:
            started = time.time()
            await ws.send_str(frame.decode())
            reply: dict[str, Any] = {}
            while reply.get("ref") != ref and reply.get("code") != "rate_limited":
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    t.failed_batches += 1
                    return
                reply = orjson.loads(msg.data)
            if reply.get("type") == "tracked":
                t.account(chunk, reply, started)
                break
            t.retries_503 += 1  # unavailable (buffer full) or rate limited: back off, resend
            await asyncio.sleep(0.5)
        # Within rooms.messages_per_second (10/s): at most one frame per 0.1 s per socket.
        await asyncio.sleep(max(0.0, 0.1 - (time.time() - started)))


async def open_socket(session: aiohttp.ClientSession, url: str, room: int
                      ) -> tuple[aiohttp.ClientWebSocketResponse, int]:  # fmt: skip
    token = issue_token(DEV_SECRET, "viewer", anonymous_subject(), 3600)
    ws_url = url.replace("http://", "ws://") + f"/ws?room={room}&token={token}"
    for _attempt in range(20):
        try:
            ws = await session.ws_connect(ws_url, heartbeat=None, max_msg_size=0)
            welcome = orjson.loads((await ws.receive()).data)
            return ws, int(welcome["server_time"] - time.time() * 1000)
        except (aiohttp.ClientError, TimeoutError, KeyError, TypeError):
            await asyncio.sleep(0.5)
    raise SystemExit("a loader socket could not join")


async def load(job: dict[str, Any], ready: Any, go: Any) -> dict[str, Any]:
    """One loader process: its viewers' events made and its sockets joined, then (``ready``)
    it waits for the start time on ``go`` (the same for every loader), then the burst."""
    rng = random.Random(job["seed"])
    plans = [make_events(job["per_viewer"], job["room"], 0.01, 0.01, rng)
             for _ in range(job["http"] + job["sockets"])]  # fmt: skip
    t = Tally()
    url = job["url"]
    connector = aiohttp.TCPConnector(limit=job["connections"])
    # Sockets on connections of their own: an upgrade on a keep-alive connection that carried
    # HTTP first is refused by the lean path (503, docs/protocol.md).
    ws_connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(120)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as s,
        aiohttp.ClientSession(connector=ws_connector, timeout=timeout) as ws_session,
    ):
        gate = asyncio.Semaphore(50)

        async def joined() -> tuple[aiohttp.ClientWebSocketResponse, int]:
            async with gate:
                return await open_socket(ws_session, url, job["room"])

        sockets = await asyncio.gather(*(joined() for _ in range(job["sockets"])))
        ready.put(job["index"])
        start_at = await asyncio.to_thread(go.get)  # the parent's start time (wall clock)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        cpu = time.process_time()
        await asyncio.gather(
            *(http_viewer(s, url, plans[i], job["batch"], t) for i in range(job["http"])),
            *((socket_viewer_waiting if job["waiting"] else socket_viewer)(
                    ws, off, plans[job["http"] + i], job["frame_events"], t
                )
              for i, (ws, off) in enumerate(sockets)),
        )  # fmt: skip
        cpu = time.process_time() - cpu
        for ws, _ in sockets:
            await ws.close()
    return {
        "cpu": cpu,
        "acked": t.acked, "sent": t.sent, "duplicates": t.duplicates, "rejected": t.rejected,
        "retries_503": t.retries_503, "failed_batches": t.failed_batches, "ack_ms": t.ack_ms,
        "last_ack": t.last_ack,
    }  # fmt: skip


def load_process(job: dict[str, Any], ready: Any, go: Any, out: Any) -> None:
    out.put(asyncio.run(load(job, ready, go)))


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def tree_cpu(roots: list[int]) -> float:
    """CPU seconds (user + system) used so far by ``roots`` and their live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, list(roots)
    while todo:
        pid = todo.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
        todo.extend(_children(pid))
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (/proc/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    vals = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = vals[3] + vals[4]
    return (sum(vals) - idle) / tick, sum(vals) / tick


async def copy_ceiling(db: str, pg_pids: list[int], repeats: int = 3) -> tuple[float, float, int]:
    """Raw COPY of the very rows the burst stored (``source = 'client'``) into a plain table of
    the same shape as analytics_events (``LIKE … INCLUDING ALL``: the same columns and the same
    three partial indexes, nothing else; the JSON columns as text, as the writer stages them),
    5,000 rows a call on one connection, ``repeats`` times (a fresh table each): the best
    rows/s, the CPU (PostgreSQL + this process) per row in µs of that best run, and the rows."""
    conn = await connect(db)
    best, best_cpu = 0.0, 0.0
    try:
        cols = ", ".join(COLUMNS).replace("variants, props", "variants::text, props::text")
        records = [tuple(r) for r in await conn.fetch(
            f"SELECT {cols} FROM analytics_events WHERE source = 'client' ORDER BY received_at"
        )]  # fmt: skip
        rows = len(records)
        for _ in range(repeats):
            await conn.execute("DROP TABLE IF EXISTS bench_copy")
            await conn.execute("CREATE TABLE bench_copy (LIKE analytics_events INCLUDING ALL)")
            # asyncpg's binary COPY has no jsonb encoder (the writer stages JSON as text too).
            await conn.execute(
                "ALTER TABLE bench_copy ALTER variants TYPE text, ALTER props TYPE text"
            )
            cpu = tree_cpu(pg_pids) + time.process_time()
            started = time.perf_counter()
            for i in range(0, rows, 5000):
                await conn.copy_records_to_table("bench_copy", records=records[i : i + 5000],
                                                 columns=COLUMNS)  # fmt: skip
            rate = rows / (time.perf_counter() - started)
            cpu = tree_cpu(pg_pids) + time.process_time() - cpu
            if rate > best:
                best, best_cpu = rate, cpu / rows * 1e6
        indexes = await conn.fetchval(
            "SELECT count(*) FROM pg_index WHERE indrelid = 'bench_copy'::regclass"
        )
        await conn.execute("DROP TABLE bench_copy")
        return best, best_cpu, indexes
    finally:
        await conn.close()


async def run(
    args: argparse.Namespace, url: str, db: str, server_pid: int, pg_pids: list[int]
) -> dict[str, Any]:
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
    per_viewer = args.events // args.viewers
    half = args.viewers // 2
    n = args.loaders
    # Let the workers finish their own start-up work (imports, jieba's dictionary, caches).
    deadline = time.monotonic() + args.settle
    while time.monotonic() < deadline:
        before = tree_cpu([server_pid])
        await asyncio.sleep(1.0)
        if tree_cpu([server_pid]) - before < 0.05:
            break
    jobs = [
        {
            "url": url, "room": room, "per_viewer": per_viewer, "seed": 20261130 + i,
            "http": half // n + (i < half % n), "sockets": (args.viewers - half) // n
            + (i < (args.viewers - half) % n), "batch": args.batch,
            "frame_events": args.frame_events, "connections": max(1, args.connections // n),
            "index": i,
            "waiting": args.socket_mode == "waiting",
        }
        for i in range(n)
    ]  # fmt: skip
    ctx = multiprocessing.get_context("spawn")
    ready, out = ctx.Queue(), ctx.Queue()
    gos = [ctx.Queue() for _ in jobs]
    procs = [ctx.Process(target=load_process, args=(j, ready, g, out), daemon=True)
             for j, g in zip(jobs, gos, strict=True)]  # fmt: skip
    for proc in procs:
        proc.start()
    for _ in procs:
        await asyncio.to_thread(ready.get, True, 300)
    start_at = time.time() + 0.3
    for g in gos:
        g.put(start_at)
    await asyncio.sleep(0.3)
    spy = start_py_spy(server_pid, args.py_spy) if args.py_spy else None
    kv = valkey_pids()
    cpu0 = (tree_cpu([server_pid]), tree_cpu(pg_pids), machine_busy(), tree_cpu(kv))
    parts = [await asyncio.to_thread(out.get, True, 600) for _ in procs]
    cpu1 = (tree_cpu([server_pid]), tree_cpu(pg_pids), machine_busy(), tree_cpu(kv))
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
    for proc in procs:
        proc.join(30)
    acked: set[str] = set()
    for part in parts:
        acked.update(part["acked"])
    t = Tally()
    t.sent = sum(p["sent"] for p in parts)
    t.duplicates = sum(p["duplicates"] for p in parts)
    t.rejected = sum(p["rejected"] for p in parts)
    t.retries_503 = sum(p["retries_503"] for p in parts)
    t.failed_batches = sum(p["failed_batches"] for p in parts)
    t.ack_ms = [ms for p in parts for ms in p["ack_ms"]]
    burst = max(max(p["last_ack"] for p in parts) - start_at, 1e-9)
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
    lost = len(acked - stored_ids)
    ceiling, ceiling_cpu_us, ceiling_indexes = await copy_ceiling(db, pg_pids)
    acks = sorted(t.ack_ms)
    eps = len(acked) / burst
    # Everything this benchmark ran (servers, PostgreSQL, Valkey, loaders) per stored event: what
    # the burst would reach with the machine's cores to itself (other work on a shared machine
    # takes the rest of `machine_busy`).
    ours = (cpu1[0] - cpu0[0]) + (cpu1[1] - cpu0[1]) + (cpu1[3] - cpu0[3])
    ours += sum(p["cpu"] for p in parts)
    cpu_us = ours / max(len(acked), 1) * 1e6
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
        "copy_ceiling_cpu_us_per_row": round(ceiling_cpu_us, 1),
        "copy_ceiling_indexes": ceiling_indexes,
        "copy_ceiling": "the stored client rows, same columns and indexes, plain table, best of 3",
        "cpu_us_per_event": round(cpu_us, 1),
        "cpu_bound_events_per_s": round((os.cpu_count() or 1) * 1e6 / cpu_us),
        "share_of_machine_used_by_others": round(1 - ours / max(cpu1[2][0] - cpu0[2][0], 1e-9), 3),
        "share_of_ceiling": round(eps / ceiling, 3),
        "burst_seconds": round(burst, 2),
        "viewers": args.viewers,
        "http_batch_events": args.batch,
        "socket_frame_events": args.frame_events,
        "workers": args.workers,
        "loader_processes": args.loaders,
        "socket_mode": args.socket_mode,
        "server_settings": args.set or [],
        "cpu_seconds_during_burst": {
            "servers": round(cpu1[0] - cpu0[0], 2),
            "postgres": round(cpu1[1] - cpu0[1], 2),
            "valkey": round(cpu1[3] - cpu0[3], 2),
            "loaders": round(sum(p["cpu"] for p in parts), 2),
            "machine_busy": round(cpu1[2][0] - cpu0[2][0], 2),
            "machine_total": round(cpu1[2][1] - cpu0[2][1], 2),
        },
        "date": dt.date.today().isoformat(),
        "finished_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "machine": machine(),
        "note": "loader, server, PostgreSQL and Valkey share the machine",
    }


def start_py_spy(pid: int, out_dir: str) -> subprocess.Popen[bytes]:
    """py-spy recording ``pid`` and its worker processes until SIGINT (raw collapsed stacks)."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).parent / "py-spy"
    return subprocess.Popen(
        [str(exe), "record", "-p", str(pid), "--subprocesses", "-r", "100", "-f", "raw",
         "-o", str(Path(out_dir) / "ingest-servers.txt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def valkey_pids() -> list[int]:
    """The embedded Valkey this process started (a direct child named valkey-server)."""
    out = []
    for pid in _children(os.getpid()):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "valkey-server":
                out.append(pid)
        except OSError:
            continue
    return out


def postmaster_pid(data_dir: str) -> list[int]:
    found = list(Path(data_dir).glob("**/postmaster.pid"))
    return [int(found[0].read_text().split()[0])] if found else []


def start_server(db: str, redis: str, workers: int, viewers: int, extra: list[str] | None = None
                 ) -> tuple[Any, str]:  # fmt: skip
    """``serve --workers N`` on the embedded backends, admitting every viewer socket;
    ``extra``: ``LIVECOMMERCE_…=value`` settings for the servers (``--set``)."""
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
    for kv in extra or []:
        key, _, value = kv.partition("=")
        env[key] = value
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
    p.add_argument("--loaders", type=int, default=2, help="loader processes")
    p.add_argument(
        "--socket-mode",
        choices=("pipelined", "waiting"),
        default="waiting",
        help="track frames without waiting for answers (as the client library) or each after "
        "the previous answer",
    )
    p.add_argument(
        "--settle",
        type=float,
        default=30.0,
        help="at most this many seconds for the servers to go idle before the burst",
    )
    p.add_argument(
        "--py-spy",
        metavar="DIR",
        help="record the servers with py-spy during the burst (raw format) into DIR",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="LIVECOMMERCE_SECTION_KEY=VALUE",
        help="a server setting (repeatable), e.g. LIVECOMMERCE_ANALYTICS_FLUSH_INTERVAL_MS=100",
    )
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBackends(tmp, fsync=False) as urls:
        db = urls.database_url
        asyncio.run(_prepare(db))
        proc, url = start_server(db, urls.redis_url, args.workers, args.viewers, args.set)
        try:
            result = asyncio.run(run(args, url, db, proc.pid, postmaster_pid(tmp)))
        finally:
            proc.terminate()
            proc.wait(30)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
