"""The analytics writer's PostgreSQL steps, one at a time, against the raw COPY ceiling.

``.venv/bin/python bench/ingest_pg_steps.py [--rows 100000] [--batch 5000] [--repeats 2]
[--ids v7|v4]``

An embedded PostgreSQL (migrations applied, today's partition made), one connection, rows
shaped like bench/ingest.py's (anonymous viewers; ``--signed-in`` gives every row a user, which
the partial goods-by-user index then indexes; ``--ids v4`` gives random ids instead of
time-ordered ones). For each step: rows/s and the CPU per row (µs) of the PostgreSQL backend and
of backend + this (client) process. Results: bench/README.md, "Analytics ingestion", "Second
pass" and "Sixth pass".
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from flashsale import _prepare
from ingest_loader import uuid7

from livecommerce.db import connect
from livecommerce.embedded import EmbeddedBackends
from livecommerce.growth.analytics import writer as w
from livecommerce.growth.analytics.events import COLUMNS
from livecommerce.growth.analytics.partitions import create_partition
from livecommerce.growth.analytics.writer_pool import init_copy_connection

TICK = os.sysconf("SC_CLK_TCK")
S = w.STAGING
Step = Callable[[Any, list[tuple[Any, ...]]], Awaitable[None]]


def cpu_of(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def make_rows(n: int, signed_in: bool, ids: str = "v7") -> list[tuple[Any, ...]]:
    """``n`` rows; their ids v7 (50 a millisecond, as a burst's clients make them) or v4."""
    rng = random.Random(1)
    now = dt.datetime.now(dt.UTC)
    ms = int(now.timestamp() * 1000)
    types = ["page_view", "goods_impression", "bubble_click"]
    make_id = (
        (lambda i: uuid.UUID(uuid7(ms + i // 50, rng))) if ids == "v7" else (lambda i: uuid.uuid4())
    )
    return [
        (make_id(i), rng.choice(types), now, now, "client", False,
         f"viewer:{rng.randint(1, 2000)}", i % 5000 + 1 if signed_in else None,
         rng.randint(1, 2000), rng.randint(1, 3), rng.randint(1, 20), None, None,
         "pages/live/live", None, None)
        for i in range(n)
    ]  # fmt: skip


def staged(*sql: str) -> Step:
    """COPY into the writer's staging table, then ``sql``, in one transaction."""

    async def step(conn: Any, rows: list[tuple[Any, ...]]) -> None:
        async with conn.transaction():
            await conn.execute(w._CREATE_STAGING)
            await conn.copy_records_to_table(S, records=rows, columns=COLUMNS)
            for q in sql:
                await conn.fetch(q)

    return step


def copy_into(table: str) -> Step:
    async def step(conn: Any, rows: list[tuple[Any, ...]]) -> None:
        await conn.copy_records_to_table(table, records=rows, columns=COLUMNS)

    return step


_OLD_WRITER = f"""
WITH s AS (SELECT DISTINCT ON (event_id) * FROM {S} ORDER BY event_id),
     n AS (INSERT INTO analytics_event_ids (event_id) SELECT event_id FROM s
           ON CONFLICT DO NOTHING RETURNING event_id)
INSERT INTO analytics_events ({w._COLS})
SELECT {w._COLS.replace("variants, props", "variants::jsonb, props::jsonb")}
FROM s JOIN n USING (event_id) RETURNING event_id"""
_UNNEST = f"""
WITH s AS (SELECT DISTINCT ON (event_id) * FROM unnest($1::uuid[], $2::text[],
  $3::timestamptz[], $4::timestamptz[], $5::text[], $6::bool[], $7::text[], $8::int8[],
  $9::int8[], $10::int8[], $11::int8[], $12::int8[], $13::int8[], $14::text[], $15::text[],
  $16::text[]) AS t({w._COLS}) ORDER BY event_id),
 n AS (INSERT INTO analytics_event_ids (event_id) SELECT event_id FROM s
       ON CONFLICT DO NOTHING RETURNING event_id)
INSERT INTO analytics_events ({w._COLS})
SELECT {w._COLS.replace("variants, props", "variants::jsonb, props::jsonb")}
FROM s JOIN n USING (event_id) RETURNING event_id"""


async def unnest(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    async with conn.transaction():
        await conn.fetch(_UNNEST, *zip(*rows, strict=True))


async def fast_path(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    """The writer's fast path: the ids, then the rows, each by COPY, in one transaction."""
    async with conn.transaction():
        await conn.copy_records_to_table(
            "analytics_event_ids", records=zip(map(w._ID, rows)), columns=("event_id",)
        )
        await conn.copy_records_to_table("analytics_events", records=rows, columns=COLUMNS)


async def copy_ids(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    await conn.copy_records_to_table(
        "analytics_event_ids", records=zip(map(w._ID, rows)), columns=("event_id",)
    )


STEPS: list[tuple[str, Step]] = [
    ("ceiling: raw COPY, same shape (3 idx)", copy_into("bench_copy")),
    ("COPY rows into analytics_events only", copy_into("analytics_events")),
    ("COPY ids into analytics_event_ids only", copy_ids),
    ("COPY into the staging table only", staged()),
    ("+ ids INSERT ON CONFLICT DO NOTHING", staged(
        f"INSERT INTO analytics_event_ids (event_id) SELECT event_id FROM {S}"
        " ON CONFLICT DO NOTHING")),
    ("+ ids plain INSERT, NOT EXISTS", staged(
        f"INSERT INTO analytics_event_ids (event_id) SELECT event_id FROM {S} s WHERE NOT"
        " EXISTS (SELECT 1 FROM analytics_event_ids i WHERE i.event_id = s.event_id)")),
    ("+ ids plain INSERT, no check (floor)", staged(
        f"INSERT INTO analytics_event_ids (event_id) SELECT event_id FROM {S}")),
    ("writer before (RETURNING every new id)", staged(_OLD_WRITER)),
    ("slow way (staging + one statement)", staged(w._DEDUP_INSERT)),
    ("writer now: COPY ids, COPY rows", fast_path),
    ("one statement from unnest arrays", unnest),
]  # fmt: skip


async def measure(db: str, name: str, step: Step, rows: list[tuple[Any, ...]], batch: int
                  ) -> None:  # fmt: skip
    conn = await connect(db)
    await init_copy_connection(conn)
    try:
        await conn.execute("TRUNCATE analytics_event_ids, analytics_events, bench_copy")
        pid = conn.get_server_pid()
        pg0, me0, t0 = cpu_of(pid), time.process_time(), time.perf_counter()
        for i in range(0, len(rows), batch):
            await step(conn, rows[i : i + batch])
        elapsed = time.perf_counter() - t0
        pg, me = cpu_of(pid) - pg0, time.process_time() - me0
        n = len(rows)
        print(f"{name:42s} {n / elapsed:9,.0f} rows/s  PostgreSQL {pg / n * 1e6:5.1f} µs/row"
              f"  with the client {(pg + me) / n * 1e6:5.1f} µs/row", flush=True)  # fmt: skip
    finally:
        await conn.close()


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBackends(tmp, fsync=False) as urls:
        db = urls.database_url
        await _prepare(db)
        conn = await connect(db)
        await create_partition(conn, dt.datetime.now(dt.UTC).date())
        await conn.execute("CREATE TABLE bench_copy (LIKE analytics_events INCLUDING ALL)")
        await conn.close()
        rows = make_rows(args.rows, args.signed_in, args.ids)
        print(
            f"load average {os.getloadavg()[0]:.2f}, {args.rows:,} rows, {args.batch:,} a call,"
            f" {args.ids} ids"
        )
        for _ in range(args.repeats):
            for name, step in STEPS:
                await measure(db, name, step, rows, args.batch)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=5000)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--signed-in", action="store_true", help="every row has a user_id")
    p.add_argument(
        "--ids",
        choices=("v7", "v4"),
        default="v7",
        help="time-ordered ids (as the client library makes them) or random ones",
    )
    asyncio.run(main(p.parse_args()))
