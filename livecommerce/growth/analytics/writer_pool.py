"""The analytics writer's own PostgreSQL connections: a jsonb codec for JSON *text*.

The writer's rows carry ``variants`` and ``props`` as JSON text (encoded once, when the event is
judged), and binary ``COPY`` needs each jsonb value in jsonb's binary input format: a version
byte (1), then the text. The application's pool decodes and encodes jsonb as Python values, so
the writer has a small pool of its own (one connection per flusher) with this codec.
"""

from __future__ import annotations

import asyncpg

from livecommerce.config import DatabaseConfig
from livecommerce.db import create_pool


async def init_copy_connection(conn: asyncpg.Connection) -> None:
    """Give ``conn`` the writer's jsonb codec: JSON text in jsonb's binary format (COPY)."""
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", format="binary", encoder=_jsonb_text, decoder=_jsonb_read
    )


def _jsonb_text(text: str) -> bytes:
    """JSON text → jsonb's binary input (format version 1, then the text)."""
    return b"\x01" + text.encode()


def _jsonb_read(data: bytes) -> str:
    return data[1:].decode()


async def create_writer_pool(cfg: DatabaseConfig, flushers: int) -> asyncpg.Pool:
    """The writer's own connections (one per flusher), with the JSON-text jsonb codec."""
    return await create_pool(cfg, max_size=flushers, init=init_copy_connection)
