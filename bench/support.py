"""Customer-service benchmark: 2,000 pushed messages from 500 buyers within 10 s, with WeChat's
retries of 10 % of them, over real HTTP on the embedded PostgreSQL + Valkey.

    .venv/bin/python bench/support.py --json bench/results/support-$(date -u +%F).json

It starts private embedded backends, a fake WeChat *in this process* (so it can record each
buyer's message in WeChat's reply window, as WeChat does, without an HTTP hop) and
``livecommerce serve`` pointed at it with a push token and EncodingAESKey. Messages are signed
(half of them in safe mode, AES) and posted open-loop: message i is due at start + i / rate and
its acknowledgement latency is measured from that due time (no coordinated omission). A retry
re-posts the same body (same MsgId) 0.2-1 s later. Afterwards PostgreSQL is checked: one inbox
row per MsgId, every row processed, the replies' states, and that WeChat (the fake) never had
to refuse a reply for the quota (45015/45047).

Writes {"messages", "retries", "acked", "p50_ms", "p99_ms", "max_ms", "inbox_rows",
"processed", "replies": {state: n}, "refused_by_wechat", "seconds_to_settle", "date",
"machine"}.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from flashsale import ROOT, machine

from livecommerce.commerce.wechatpay import DevPlatform
from livecommerce.db import connect, ensure_database
from livecommerce.devtools.fake_wechat import FakeWechat, openid_for, start_fake
from livecommerce.embedded import EmbeddedBackends
from livecommerce.migrations import migrate
from livecommerce.support.crypto import MessageCrypt

APP_ID, SECRET = "wxbench000000000", "bench-secret"
TOKEN, AES_KEY = "benchtoken", "BenchKey0123456789abcdefghijklmnopqrstuvwxy"
QUESTIONS = ["我的订单", "还有货吗", "退款", "where is order #42", "运费多少", "hello", "人工"]


def start_server(db: str, redis: str, extra: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """``livecommerce serve`` (one worker) on the backends, with ``extra`` settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECOMMERCE_")}
    env.update(
        LIVECOMMERCE_DATABASE_URL=db, LIVECOMMERCE_REDIS_URL=redis,
        LIVECOMMERCE_SERVER_LOG_LEVEL="warning", PYTHONUNBUFFERED="1", **extra,
    )  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "livecommerce", "serve", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if "listening on http://" in line:
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe flowing
            return proc, line.split("listening on ", 1)[1].strip()
    proc.kill()
    raise SystemExit("server did not start")


async def _prepare(db: str) -> None:
    await ensure_database(db)
    conn = await connect(db)
    try:
        await migrate(conn)
    finally:
        await conn.close()


async def run(args: argparse.Namespace, url: str, db: str, fake: FakeWechat) -> dict[str, Any]:
    cs = fake.cs
    assert cs is not None
    rng = random.Random(20261130)
    buyers = [openid_for(APP_ID, f"buyer{i}") for i in range(args.buyers)]
    latencies: list[float] = []
    answers: dict[str, int] = {}
    push = url + "/api/support/wechat/push"
    retries = 0

    async def post(
        session: aiohttp.ClientSession, due: float, body: bytes, q: dict[str, str], retry: bool
    ) -> None:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        if not retry:  # WeChat records the buyer's message as it pushes it: the window opens
            cs.open(q["openid"], "message")
        async with session.post(push, params=q, data=body) as resp:
            text = await resp.text()
        latencies.append((time.perf_counter() - due) * 1000)
        key = text if resp.status == 200 else str(resp.status)
        answers[key] = answers.get(key, 0) + 1

    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as session:
        planned = []
        for i in range(args.messages):
            openid = rng.choice(buyers)
            values = cs.message(openid, {"type": "text", "content": rng.choice(QUESTIONS)})
            mode = "safe" if i % 2 else "plain"
            body, query = cs.envelope(values, rng.choice(["xml", "json"]), mode, 0, "good")
            planned.append((i / args.rate, body, query, False))
            if rng.random() < args.retry_share:
                retries += 1
                planned.append((i / args.rate + rng.uniform(0.2, 1.0), body, query, True))
        start = time.perf_counter() + 0.5  # due times start once every body is built
        tasks = [post(session, start + at, body, q, retry) for at, body, q, retry in planned]
        await asyncio.gather(*tasks)
    sent_at = time.perf_counter()
    conn = await connect(db)
    try:
        while True:
            left = await conn.fetchval(
                """SELECT (SELECT count(*) FROM support_inbox WHERE processed_at IS NULL)
                        + (SELECT count(*) FROM support_replies WHERE state = 'pending')"""
            )
            if left == 0 or time.perf_counter() - sent_at > 300:
                break
            await asyncio.sleep(0.2)
        settle = time.perf_counter() - sent_at
        inbox_rows = await conn.fetchval("SELECT count(*) FROM support_inbox")
        processed = await conn.fetchval(
            "SELECT count(*) FROM support_inbox WHERE processed_at IS NOT NULL"
        )
        states = dict(
            await conn.fetch("SELECT state, count(*) FROM support_replies GROUP BY state")
        )
        refused = await conn.fetchval(
            "SELECT count(*) FROM support_replies WHERE errcode IN (45015, 45047)"
        )
        errcodes = dict(
            await conn.fetch(
                """SELECT errcode::text, count(*) FROM support_replies
                   WHERE errcode IS NOT NULL GROUP BY errcode"""
            )
        )
    finally:
        await conn.close()
    latencies.sort()
    return {
        "messages": args.messages, "buyers": args.buyers, "retries": retries,
        "rate_per_s": args.rate, "answers": answers,
        "acked": answers.get("success", 0),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
        "max_ms": round(latencies[-1], 2),
        "inbox_rows": inbox_rows, "processed": processed,
        "replies": {k: int(v) for k, v in states.items()},
        "refused_by_wechat": refused, "errcodes": {k: int(v) for k, v in errcodes.items()},
        "wechat_sends_accepted": len(cs.sent),
        "seconds_to_settle": round(settle, 2),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": machine(),
    }  # fmt: skip


async def main_async(args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    fake = FakeWechat(app_id=APP_ID, app_secret=SECRET, platform=DevPlatform.generate())
    runner, fake_url = await start_fake(fake)
    assert fake.cs is not None
    fake.cs.token, fake.cs.crypt = TOKEN, MessageCrypt.from_settings(APP_ID, AES_KEY)
    with EmbeddedBackends(tmp, fsync=False) as urls:
        await _prepare(urls.database_url)
        env = {
            "LIVECOMMERCE_WECHAT_BASE_URL": fake_url, "LIVECOMMERCE_WECHAT_APP_ID": APP_ID,
            "LIVECOMMERCE_WECHAT_APP_SECRET": SECRET, "LIVECOMMERCE_SUPPORT_TOKEN": TOKEN,
            "LIVECOMMERCE_SUPPORT_ENCODING_AES_KEY": AES_KEY,
        }  # fmt: skip
        proc, url = await asyncio.to_thread(start_server, urls.database_url, urls.redis_url, env)
        try:
            return await run(args, url, urls.database_url, fake)
        finally:
            proc.terminate()
            proc.wait(30)
            await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--buyers", type=int, default=500)
    p.add_argument("--rate", type=float, default=200.0, help="messages per second (open loop)")
    p.add_argument("--retry-share", type=float, default=0.10)
    p.add_argument("--json", default="bench/results/support.json")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(main_async(args, tmp))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
