"""Flash-sale benchmark: 10,000 purchase attempts over real HTTP for 100 units.

    .venv/bin/python bench/flashsale.py --json bench/results/flashsale-$(date -u +%F).json
    .venv/bin/python bench/flashsale.py --concurrency 100 --json out.json   # closed loop
    .venv/bin/python bench/flashsale.py --url http://host:8080 --database-url postgresql://... \
        --secret "$LIVECOMMERCE_SECURITY_SECRET" --json out.json

Without ``--url`` it starts a private embedded PostgreSQL + Valkey (temporary directory) and
``livecommerce serve --workers 2`` (one process per core) on them. It seeds a host, goods, a
sale of ``--units`` units (limit 1 per user, already started) and ``--attempts`` users directly
in PostgreSQL (so the sale is cold in Redis), mints their tokens with the server's secret, then
fires every attempt — one per user, each with its own Idempotency-Key:

* open loop (default, ``--rate`` 3,500/s): attempt i is due at start + i / rate whatever the
  others are doing; latency from its due time (waiting for a connection counts, so a stalled
  server cannot hide its queue: no coordinated omission);
* closed loop (``--concurrency C``): C keep-alive connections, each sending its next attempt
  when the previous one is answered; latency from the moment a connection picks it up.

``--warmup N`` (default 2,000; 0 = cold) first runs N attempts on a separate sale (N/10 units)
the same way, so the measured sale meets a server whose pools have grown, as a server that has
been serving would. Afterwards PostgreSQL is checked: orders
of the sale, units sold, and users over the limit.

Writes {"attempts", "orders", "oversold", "attempts_per_s", "p50_ms", "p99_ms", ...,
"warmup", "date", "machine": {cores, ram}}.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from livecommerce.auth.tokens import issue_token  # noqa: E402
from livecommerce.config import DEV_SECRET  # noqa: E402
from livecommerce.db import connect, ensure_database  # noqa: E402
from livecommerce.embedded import EmbeddedBackends  # noqa: E402
from livecommerce.migrations import migrate  # noqa: E402


def machine() -> dict[str, Any]:
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cores": os.cpu_count(), "ram": f"{ram / 2**30:.1f} GiB", "python": sys.version[:6]}


def start_server(db: str, redis: str, workers: int) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECOMMERCE_")}
    env.update(
        LIVECOMMERCE_DATABASE_URL=db,
        LIVECOMMERCE_REDIS_URL=redis,
        LIVECOMMERCE_SERVER_LOG_LEVEL="warning",
        LIVECOMMERCE_DATABASE_POOL_MAX_SIZE="20",
        PYTHONUNBUFFERED="1",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "livecommerce", "serve", "--port", "0", "--workers", str(workers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if "listening on http://" in line and (workers == 1 or "workers listening" in line):
            # Keep reading its output, or a full pipe would stall the server.
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, line.split("listening on ", 1)[1].strip()
    proc.kill()
    raise SystemExit("server did not start")


async def seed(db: str, secret: str, attempts: int, units: int) -> tuple[int, list[str]]:
    conn = await connect(db)
    try:
        tag = secrets.token_hex(4)
        host = await conn.fetchval(
            "INSERT INTO hosts (name) VALUES ($1) RETURNING id", f"bench-{tag}"
        )
        goods = await conn.fetchval(
            """INSERT INTO goods (host_id, title, price_fen, stock) VALUES ($1, 'Bench goods',
               19900, $2) RETURNING id""",
            host,
            attempts * 2,
        )
        sale = await conn.fetchval(
            """INSERT INTO flash_sales (host_id, goods_id, sale_price_fen, stock, per_user_limit,
                                        starts_at, ends_at)
               VALUES ($1, $2, 990, $3, 1, now() - interval '1 second', now() + interval '1 hour')
               RETURNING id""",
            host,
            goods,
            units,
        )
        users = await conn.fetch(
            """INSERT INTO users (openid) SELECT $1 || g FROM generate_series(1, $2) g
               RETURNING id""",
            f"bench-{tag}-",
            attempts,
        )
    finally:
        await conn.close()
    return sale, [issue_token(secret, "user", u["id"], 3600) for u in users]


async def attempt(
    session: aiohttp.ClientSession, url: str, sale: int, token: str, statuses: Counter[str]
) -> int:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": secrets.token_hex(8)}
    async with session.post(f"{url}/api/flash-sales/{sale}/buy", headers=headers) as r:
        body = await r.read()
    if r.status in (200, 201):
        statuses[str(r.status)] += 1
    else:
        statuses[orjson.loads(body)["error"]["code"]] += 1
    return r.status


def summary(latencies: list[float], elapsed: float, statuses: Counter[str]) -> dict[str, Any]:
    latencies.sort()
    return {
        "elapsed_s": round(elapsed, 3),
        "attempts_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
        "max_ms": round(latencies[-1], 2),
        "answers": dict(statuses),
    }


async def fire_at_rate(
    url: str,
    sale: int,
    tokens: list[str],
    rate: float,
    max_conns: int,
    warm: int,
    raw: list[tuple[int, int, float]],
) -> dict[str, Any]:
    """Open loop: attempt i is due at start + i / rate, whatever the earlier ones are doing.

    Latency counts from the due time, so time spent waiting for a free connection or behind a
    busy loader counts too (no coordinated omission). ``warm`` keep-alive connections are opened
    first (buyers with the mini-program already open); each attempt's task is created at its
    due time, not all 10,000 up front.
    """
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=max_conns)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def ping() -> None:
            async with session.get(f"{url}/healthz") as r:
                await r.read()

        await asyncio.gather(*(ping() for _ in range(min(warm, max_conns))))

        async def one(i: int, due: float, token: str) -> None:
            status = await attempt(session, url, sale, token, statuses)
            latencies.append((time.perf_counter() - due) * 1000)
            raw.append((i, status, round(latencies[-1], 3)))

        tasks: list[asyncio.Task[None]] = []
        start = time.perf_counter()
        for i, token in enumerate(tokens):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due, token)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {
        "mode": "open loop",
        "offered_per_s": rate,
        "warm_connections": min(warm, max_conns),
        **summary(latencies, elapsed, statuses),
    }


async def fire(url: str, sale: int, tokens: list[str], concurrency: int) -> dict[str, Any]:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for t in tokens:
        queue.put_nowait(t)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while not queue.empty():
                token = queue.get_nowait()
                t0 = time.perf_counter()
                await attempt(session, url, sale, token, statuses)
                latencies.append((time.perf_counter() - t0) * 1000)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return {"mode": "closed loop", **summary(latencies, elapsed, statuses)}


async def verify(db: str, sale: int, units: int) -> dict[str, Any]:
    conn: asyncpg.Connection = await asyncpg.connect(db)
    try:
        orders = await conn.fetchval(
            "SELECT count(*) FROM flash_sale_orders WHERE sale_id = $1", sale
        )
        sold_units = await conn.fetchval(
            "SELECT coalesce(sum(quantity), 0) FROM flash_sale_orders WHERE sale_id = $1", sale
        )
        over_limit = await conn.fetchval(
            """SELECT count(*) FROM (SELECT user_id FROM flash_sale_orders WHERE sale_id = $1
               GROUP BY user_id HAVING sum(quantity) > 1) x""",
            sale,
        )
        pg_sold = await conn.fetchval("SELECT sold FROM flash_sales WHERE id = $1", sale)
    finally:
        await conn.close()
    return {
        "orders": orders,
        "oversold": max(0, sold_units - units),
        "users_over_limit": over_limit,
        "pg_sold": pg_sold,
    }


async def warm_up(args: argparse.Namespace, url: str, db: str, secret: str) -> dict[str, Any]:
    """A separate sale first, so the measured one meets a server that has been serving: its
    PostgreSQL pools grown (a new backend is a fork and an authentication), statements prepared,
    the loader's connections open. Its own figures are reported as ``warmup``."""
    units = max(1, args.warmup // 10)
    sale, tokens = await seed(db, secret, args.warmup, units)
    if args.rate:
        load = await fire_at_rate(url, sale, tokens, args.rate, args.max_connections, args.warm, [])
    else:
        load = await fire(url, sale, tokens, args.concurrency)
    checked = await verify(db, sale, units)
    return {"attempts": args.warmup, "units": units, **checked, **load}


async def run(args: argparse.Namespace, url: str, db: str, secret: str) -> dict[str, Any]:
    warmup = await warm_up(args, url, db, secret) if args.warmup else None
    sale, tokens = await seed(db, secret, args.attempts, args.units)
    if args.rate:
        raw: list[tuple[int, int, float]] = []
        load = await fire_at_rate(
            url, sale, tokens, args.rate, args.max_connections, args.warm, raw
        )
        load["_raw"] = raw
    else:
        load = await fire(url, sale, tokens, args.concurrency)
    checked = await verify(db, sale, args.units)
    return {
        "attempts": args.attempts,
        "units": args.units,
        "concurrency": args.concurrency,
        "orders": checked["orders"],
        "oversold": checked["oversold"],
        "users_over_limit": checked["users_over_limit"],
        "pg_sold": checked["pg_sold"],
        **load,
        "warmup": warmup,
        "server": "given URL"
        if args.url
        else f"embedded default, `serve --workers {args.workers}`",
        "workers": args.workers,
        "date": dt.date.today().isoformat(),
        "machine": machine(),
        "note": "loader, server, PostgreSQL and Valkey share the machine",
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--json", required=True, help="write the result here")
    p.add_argument("--url", help="an already running server (else: embedded default)")
    p.add_argument("--database-url", help="its PostgreSQL (with --url; for seeding/checking)")
    p.add_argument("--secret", default=DEV_SECRET, help="its security.secret (with --url)")
    p.add_argument("--attempts", type=int, default=10_000)
    p.add_argument("--units", type=int, default=100)
    p.add_argument(
        "--concurrency", type=int, default=None,
        help="closed loop with this many requests in flight (instead of --rate)",
    )  # fmt: skip
    p.add_argument(
        "--rate", type=float, default=3500.0,
        help="open loop: attempts per second offered (the default mode)",
    )  # fmt: skip
    p.add_argument("--max-connections", type=int, default=500, help="open loop: connection cap")
    p.add_argument("--warm", type=int, default=100, help="open loop: connections opened first")
    p.add_argument("--raw", help="open loop: write 'attempt status latency_ms' lines here")
    p.add_argument(
        "--workers", type=int, default=2, help="server processes (serve --workers; one per core)"
    )
    p.add_argument(
        "--warmup", type=int, default=2000,
        help="attempts on a separate sale (a tenth as many units) before the measured one",
    )  # fmt: skip
    args = p.parse_args()
    if args.concurrency is not None:
        args.rate = None  # closed loop
    if args.url:
        if not args.database_url:
            p.error("--url needs --database-url")
        result = asyncio.run(run(args, args.url, args.database_url, args.secret))
    else:
        with tempfile.TemporaryDirectory() as tmp, EmbeddedBackends(tmp, fsync=False) as urls:
            db = urls.database_url
            asyncio.run(_prepare(db))
            proc, url = start_server(db, urls.redis_url, args.workers)
            try:
                result = asyncio.run(run(args, url, db, DEV_SECRET))
            finally:
                proc.terminate()
                proc.wait(30)
    raw = result.pop("_raw", [])
    if args.raw:
        Path(args.raw).write_text("".join(f"{i} {s} {ms}\n" for i, s, ms in sorted(raw)))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    ok = result["oversold"] == 0 and result["orders"] == min(args.units, args.attempts)
    return 0 if ok else 1


async def _prepare(db: str) -> None:
    await ensure_database(db)
    conn = await connect(db)
    try:
        await migrate(conn)
    finally:
        await conn.close()


if __name__ == "__main__":
    raise SystemExit(main())
