"""Ingestion benchmark: a burst of client events over HTTP batches and viewer sockets.

    .venv/bin/python bench/ingest.py --json bench/results/ingest-YYYY-MM-DD.json

Starts a private embedded PostgreSQL + Valkey and ``serve --workers N``, waits for the servers
to go idle (start-up work done), opens a live room; ``--loaders`` loader processes
(``ingest_loader.py``: raw asyncio HTTP and WebSocket clients) make their viewers' events,
requests and frames and join their sockets, then all start the burst at one wall-clock time.
``--viewers`` simulated viewers (half POST /api/events batches, half send ``track`` frames on
their room socket) send ``--events`` events in all, of which 1 % are re-sends of events
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
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from flashsale import _prepare  # noqa: E402
from ingest_loader import Tally, load_process  # noqa: E402
from timer_stats import machine  # noqa: E402

from livecommerce.db import connect  # noqa: E402
from livecommerce.embedded import EmbeddedBackends  # noqa: E402
from livecommerce.growth.analytics.events import COLUMNS  # noqa: E402
from livecommerce.growth.analytics.writer_pool import init_copy_connection  # noqa: E402


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
    three partial indexes, nothing else; the JSON columns as jsonb, sent as the writer sends
    them: JSON text in jsonb's binary format), 5,000 rows a call on one connection, ``repeats``
    times (a fresh table each): the best rows/s, the CPU (PostgreSQL + this process) per row
    in µs of that best run, and the rows."""
    conn = await connect(db)
    await init_copy_connection(conn)
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
            "ids": args.ids,
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
        "event_ids": args.ids,
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
        "--ids",
        choices=("v7", "v4"),
        default="v7",
        help="the valid events' ids: time-ordered v7 UUIDs from each event's ts (as the client "
        "library makes them) or random v4 UUIDs (as some other clients do)",
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
