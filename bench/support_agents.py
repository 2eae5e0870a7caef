"""Agent feed benchmark: hand-offs reach the assigned agent's WebSocket, across two nodes, and
never another shop's agent.

    .venv/bin/python bench/support_agents.py --json bench/results/support-agents-$(date -u +%F).json

Private embedded backends, a fake WeChat in this process, two ``livecommerce serve`` nodes on the
same PostgreSQL + Valkey. ``--shops`` shops each get ``--agents`` agents (signed in over HTTP,
half of them with their socket on node 1, half on node 2). ``--handoffs`` buyers, each of one
shop, enter from its goods (``SessionFrom goods:<id>``) and ask "人工", open loop at ``--rate``
per second, posted alternately to node 1 and node 2. Measured: from each "人工" post's due time
to the ``conversation`` frame that shows it assigned, on the assigned agent's socket (no
coordinated omission: acknowledgement, processing by the node's one consumer, assignment,
publish, frame); the feed's own share, from the assignment's transaction time
(``support_transitions.created_at``, the transaction's start: a slight over-estimate) to the
frame; and every conversation frame an agent receives is checked to be of
their shop (``foreign_frames`` must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from flashsale import machine
from support import AES_KEY, APP_ID, SECRET, TOKEN, _prepare, start_server

from livecommerce.commerce.wechatpay import DevPlatform
from livecommerce.console.passwords import hash_password
from livecommerce.db import connect
from livecommerce.devtools.fake_wechat import FakeWechat, openid_for, start_fake
from livecommerce.embedded import EmbeddedBackends
from livecommerce.support.crypto import MessageCrypt

PASSWORD = "bench-password"


async def seed(db: str, shops: int, agents: int, capacity: int) -> list[dict[str, Any]]:
    """Hosts with one goods item each and their agents (login a<shop>-<n>)."""
    conn = await connect(db)
    hashed = hash_password(PASSWORD)
    out = []
    try:
        for s in range(shops):
            host = await conn.fetchval(
                "INSERT INTO hosts (name) VALUES ($1) RETURNING id", f"bench-shop-{s}"
            )
            goods = await conn.fetchval(
                """INSERT INTO goods (host_id, title, price_fen, stock, status)
                   VALUES ($1, 'Scarf', 1990, 100, 'on_sale') RETURNING id""",
                host,
            )
            logins = [f"a{s}-{n}" for n in range(agents)]
            for login in logins:
                await conn.execute(
                    """INSERT INTO support_agents (host_id, name, login, password_hash, capacity)
                       VALUES ($1, $2, $2, $3, $4)""",
                    host, login, hashed, capacity,
                )  # fmt: skip
            out.append({"host": host, "goods": goods, "logins": logins})
    finally:
        await conn.close()
    return out


async def run(
    args: argparse.Namespace, urls: list[str], db: str, fake: FakeWechat, shops: list[Any]
) -> dict[str, Any]:
    cs = fake.cs
    assert cs is not None
    rng = random.Random(20261130)
    due: dict[str, float] = {}  # openid -> due time of its "人工"
    shop_of: dict[str, int] = {}
    seen: dict[str, float] = {}
    foreign = 0
    frames = 0
    all_seen = asyncio.Event()
    seen_wall: dict[str, float] = {}
    sessions: list[aiohttp.ClientSession] = []
    sockets: list[tuple[aiohttp.ClientWebSocketResponse, int, int]] = []
    for s in shops:
        for n, login in enumerate(s["logins"]):
            url = urls[n % 2]
            session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
            sessions.append(session)
            async with session.post(url + "/api/agent/session",
                                    json={"login": login, "password": PASSWORD}) as r:  # fmt: skip
                body = await r.json()
                assert r.status == 201, body
            ws = await session.ws_connect(url + "/api/agent/feed")
            hello = json.loads((await ws.receive()).data)
            sockets.append((ws, hello["agent"]["id"], s["host"]))

    async def read(ws: aiohttp.ClientWebSocketResponse, agent_id: int, host: int) -> None:
        nonlocal foreign, frames
        async for msg in ws:
            f = json.loads(msg.data)
            if f["type"] != "conversation":
                continue
            frames += 1
            c = f["conversation"]
            if shop_of.get(c["openid"]) != host:
                foreign += 1
            if c["state"] == "agent" and c["agent_id"] == agent_id and c["openid"] not in seen:
                seen[c["openid"]] = time.perf_counter()
                seen_wall[c["openid"]] = time.time()
                if len(seen) >= args.handoffs:
                    all_seen.set()

    readers = [asyncio.create_task(read(*s)) for s in sockets]
    push_urls = [u + "/api/support/wechat/push" for u in urls]

    async def buyer(session: aiohttp.ClientSession, i: int, at: float) -> None:
        s = shops[i % len(shops)]
        openid = openid_for(APP_ID, f"buyer{i}")
        shop_of[openid] = s["host"]
        push = push_urls[i % 2]
        enter = cs.message(openid, {"type": "event", "event": "user_enter_tempsession",
                                    "session_from": f"goods:{s['goods']}"})  # fmt: skip
        body, q = cs.envelope(enter, "json", "safe", 0, "good")
        await asyncio.sleep(max(0.0, at - 0.3 - time.perf_counter()))
        cs.open(openid, "enter")
        async with session.post(push, params=q, data=body) as r:
            assert r.status == 200
        ask = cs.message(openid, {"type": "text", "content": "人工"})
        body, q = cs.envelope(ask, rng.choice(["xml", "json"]), "safe", 0, "good")
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        due[openid] = at
        cs.open(openid, "message")
        async with session.post(push, params=q, data=body) as r:
            assert r.status == 200

    start = time.perf_counter() + 1.0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
        await asyncio.gather(
            *(buyer(session, i, start + i / args.rate) for i in range(args.handoffs))
        )
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_seen.wait(), 60)
    for t in readers:
        t.cancel()
    for ws, _, _ in sockets:
        await ws.close()
    for session in sessions:
        await session.close()
    lat = sorted((seen[o] - due[o]) * 1000 for o in seen if o in due)
    conn = await connect(db)
    try:
        rows = await conn.fetch(
            """SELECT openid, extract(epoch FROM max(created_at)) AS at FROM support_transitions
               WHERE to_state = 'agent' GROUP BY openid"""
        )
    finally:
        await conn.close()
    committed = {r["openid"]: float(r["at"]) for r in rows}
    feed = sorted((seen_wall[o] - committed[o]) * 1000 for o in seen_wall if o in committed)
    return {
        "shops": args.shops, "agents_per_shop": args.agents, "handoffs": args.handoffs,
        "rate_per_s": args.rate, "nodes": 2, "assigned_and_seen": len(lat),
        "p50_ms": round(statistics.median(lat), 1) if lat else None,
        "p99_ms": round(lat[max(0, int(len(lat) * 0.99) - 1)], 1) if lat else None,
        "max_ms": round(lat[-1], 1) if lat else None,
        "assigned_to_frame_p50_ms": round(statistics.median(feed), 1) if feed else None,
        "assigned_to_frame_p99_ms": round(feed[max(0, int(len(feed) * 0.99) - 1)], 1)
        if feed else None,
        "conversation_frames": frames, "foreign_frames": foreign,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": machine(),
    }  # fmt: skip


async def main_async(args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    fake = FakeWechat(app_id=APP_ID, app_secret=SECRET, platform=DevPlatform.generate())
    runner, fake_url = await start_fake(fake)
    assert fake.cs is not None
    fake.cs.token, fake.cs.crypt = TOKEN, MessageCrypt.from_settings(APP_ID, AES_KEY)
    with EmbeddedBackends(tmp, fsync=False) as urls:
        await _prepare(urls.database_url)
        shops = await seed(urls.database_url, args.shops, args.agents, args.capacity)
        env = {
            "LIVECOMMERCE_WECHAT_BASE_URL": fake_url, "LIVECOMMERCE_WECHAT_APP_ID": APP_ID,
            "LIVECOMMERCE_WECHAT_APP_SECRET": SECRET, "LIVECOMMERCE_SUPPORT_TOKEN": TOKEN,
            "LIVECOMMERCE_SUPPORT_ENCODING_AES_KEY": AES_KEY,
        }  # fmt: skip
        procs = []
        try:
            for _ in range(2):
                procs.append(
                    await asyncio.to_thread(start_server, urls.database_url, urls.redis_url, env)
                )
            return await run(args, [url for _, url in procs], urls.database_url, fake, shops)
        finally:
            for proc, _ in procs:
                proc.terminate()
                proc.wait(30)
            await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shops", type=int, default=2)
    p.add_argument("--agents", type=int, default=10, help="agents per shop")
    p.add_argument("--capacity", type=int, default=50)
    p.add_argument("--handoffs", type=int, default=400)
    p.add_argument("--rate", type=float, default=40.0, help="hand-offs per second (open loop)")
    p.add_argument("--json", default="bench/results/support-agents.json")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(main_async(args, tmp))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
