"""Demo data for the embedded default: a host, a catalogue and a live room. Idempotent."""

from __future__ import annotations

import asyncpg

DEMO_HOST = "Demo host"
_LOCK_KEY = int.from_bytes(b"lcdemo", "big")

DEMO_GOODS: list[tuple[str, str, int, int, str]] = [
    # title, category, price (fen), stock, image
    ("Velvet matte lipstick #520", "beauty", 12900, 500, "https://picsum.photos/seed/lip/600"),
    ("Hydrating sheet masks (10 pcs)", "beauty", 5900, 1200, "https://picsum.photos/seed/mask/600"),
    ("Wireless earbuds Pro", "digital", 39900, 300, "https://picsum.photos/seed/buds/600"),
    ("Phone 15 flash-sale edition", "digital", 399900, 50, "https://picsum.photos/seed/phone/600"),
    ("Down jacket, light", "apparel", 59900, 200, "https://picsum.photos/seed/jacket/600"),
    ("Cashmere scarf", "apparel", 19900, 400, "https://picsum.photos/seed/scarf/600"),
    ("Yunnan black tea 250 g", "food", 8800, 800, "https://picsum.photos/seed/tea/600"),
    ("Mixed nuts gift box", "food", 12800, 600, "https://picsum.photos/seed/nuts/600"),
]


async def ensure_host(conn: asyncpg.Connection, name: str) -> int:
    """The id of the host called ``name``, created if missing."""
    host_id: int = await conn.fetchval(
        """INSERT INTO hosts (name) VALUES ($1)
           ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id""",
        name,
    )
    return host_id


async def seed_demo(conn: asyncpg.Connection) -> bool:
    """Insert the demo data unless present; True when this call inserted it."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        if await conn.fetchval("SELECT 1 FROM hosts WHERE name = $1", DEMO_HOST):
            return False
        host_id = await conn.fetchval(
            "INSERT INTO hosts (name) VALUES ($1) RETURNING id", DEMO_HOST
        )
        goods_ids = []
        for title, category, price, stock, image in DEMO_GOODS:
            goods_ids.append(
                await conn.fetchval(
                    """INSERT INTO goods (host_id, title, category, price_fen, stock, images)
                       VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
                    host_id,
                    title,
                    category,
                    price,
                    stock,
                    [image],
                )
            )
        room_id = await conn.fetchval(
            """INSERT INTO live_rooms (host_id, title, cover_url, stream_url, state, started_at,
                                       planned_start_at)
               VALUES ($1, 'Demo live: winter picks', 'https://picsum.photos/seed/cover/800',
                       'rtmp://live.example.com/demo/stream', 'live', now(), now())
               RETURNING id""",
            host_id,
        )
        await conn.executemany(
            "INSERT INTO room_goods (room_id, goods_id, position) VALUES ($1, $2, $3)",
            [(room_id, gid, pos) for pos, gid in enumerate(goods_ids)],
        )
        return True
