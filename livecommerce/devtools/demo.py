"""Demo data for the embedded default: a host, a catalogue and a live room. Idempotent.

The goods images and the room cover are small SVGs this server serves itself
(``/static/demo-*.svg``), so the demo shows pictures on an offline machine. Goods image URLs must
be absolute http(s) URLs (``api.types.Url``), so the seed writes them against ``base_url`` — the
server's own address (:func:`demo_base_url`).
"""

from __future__ import annotations

import asyncpg

DEMO_HOST = "Demo host"
_LOCK_KEY = int.from_bytes(b"lcdemo", "big")

DEMO_GOODS: list[tuple[str, str, int, int, str]] = [
    # title, category, price (fen), stock, image (a file in console/static)
    ("Velvet matte lipstick #520", "beauty", 12900, 500, "demo-beauty.svg"),
    ("Hydrating sheet masks (10 pcs)", "beauty", 5900, 1200, "demo-beauty.svg"),
    ("Wireless earbuds Pro", "digital", 39900, 300, "demo-digital.svg"),
    ("Phone 15 flash-sale edition", "digital", 399900, 50, "demo-digital.svg"),
    ("Down jacket, light", "apparel", 59900, 200, "demo-apparel.svg"),
    ("Cashmere scarf", "apparel", 19900, 400, "demo-apparel.svg"),
    ("Yunnan black tea 250 g", "food", 8800, 800, "demo-food.svg"),
    ("Mixed nuts gift box", "food", 12800, 600, "demo-food.svg"),
]


DEMO_COVER = "demo-cover.svg"
DEFAULT_BASE_URL = "http://127.0.0.1:8080"


def demo_base_url(host: str, port: int) -> str:
    """``http://host:port`` of a server listening on ``host``/``port`` (a wildcard address or
    port 0 becomes the loopback / default port), for :func:`seed_demo`'s image URLs."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port or 8080}"


def demo_image_url(base_url: str, name: str) -> str:
    """The URL of the demo image ``name`` (a file in ``console/static``) under ``base_url``."""
    return f"{base_url.rstrip('/')}/static/{name}"


async def ensure_host(conn: asyncpg.Connection, name: str) -> int:
    """The id of the host called ``name``, created if missing."""
    host_id: int = await conn.fetchval(
        """INSERT INTO hosts (name) VALUES ($1)
           ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id""",
        name,
    )
    return host_id


async def seed_demo(conn: asyncpg.Connection, base_url: str = DEFAULT_BASE_URL) -> bool:
    """Insert the demo data unless present; True when this call inserted it.

    ``base_url`` is the server's own ``http(s)://host:port``: the images point at its
    ``/static/demo-*.svg``.
    """
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
                    [demo_image_url(base_url, image)],
                )
            )
        room_id = await conn.fetchval(
            """INSERT INTO live_rooms (host_id, title, cover_url, stream_url, state, started_at,
                                       planned_start_at)
               VALUES ($1, 'Demo live: winter picks', $2,
                       'rtmp://live.example.com/demo/stream', 'live', now(), now())
               RETURNING id""",
            host_id,
            demo_image_url(base_url, DEMO_COVER),
        )
        await conn.executemany(
            "INSERT INTO room_goods (room_id, goods_id, position) VALUES ($1, $2, $3)",
            [(room_id, gid, pos) for pos, gid in enumerate(goods_ids)],
        )
        return True
