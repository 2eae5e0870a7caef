"""Fault-test fixtures: a private, restartable Valkey (killed and restarted without disturbing the
shared one), the real app on it (and the shared PostgreSQL), and viewers that record every frame
in arrival order and reconnect like a real client."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets
from redis.asyncio import Redis

from livecommerce.config import Settings
from livecommerce.embedded import EmbeddedValkey
from tests.realtime.conftest import world

__all__ = ["world"]

# Close codes after which a client reconnects and resumes (docs/protocol.md).
RECONNECT_CODES = {1000, 1006, 1011, 1012, 4408, 4429}


class RestartableValkey(EmbeddedValkey):
    """An :class:`EmbeddedValkey` the tests kill and restart: with its data, empty, or from a
    copy of its data dir taken earlier (an older snapshot)."""

    def snapshot_aside(self, dest: Path) -> None:
        """Copy the data dir (AOF + RDB) as it is now."""
        shutil.copytree(self.data_dir, dest)

    def restart(self, mode: str, older: Path | None = None) -> None:
        """``kill -9``, then start on the same port: ``data`` as left, ``empty`` with the data
        dir wiped, ``older`` from the copy made by :meth:`snapshot_aside`."""
        self.kill()
        if mode in ("empty", "older"):
            shutil.rmtree(self.data_dir)
        if mode == "older":
            assert older is not None
            shutil.copytree(older, self.data_dir)
        self.start()


@pytest.fixture
def valkey(tmp_path: Path) -> Iterator[RestartableValkey]:
    """A private Valkey with append-only persistence (fsync off, as the shared one)."""
    server = RestartableValkey(tmp_path / "valkey", "fault-test", fsync=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def vredis(valkey: RestartableValkey) -> AsyncIterator[Redis]:
    """A test-side client on the private Valkey (not the app's)."""
    client = Redis.from_url(valkey.url)
    yield client
    with contextlib.suppress(Exception):
        await client.aclose()


@pytest.fixture
def fault_settings(settings: Settings, valkey: RestartableValkey) -> Settings:
    """The test settings on the shared PostgreSQL and the private Valkey. The periodic timer
    reconciliation is pushed out of the way: what these tests see is the rebuild that follows a
    Redis reconnect (``test_redis_state_loss`` covers the periodic one)."""
    return dataclasses.replace(
        settings.with_backends(settings.database.url, valkey.url),
        rooms=dataclasses.replace(settings.rooms, tick_seconds=0.5),
        timer=dataclasses.replace(settings.timer, reconcile_seconds=600.0),
    )


class RecordingViewer:
    """A viewer that keeps every message in arrival order (``stream``) and, like the
    mini-program client, reconnects with ``last_seq``/``epoch`` when the server closes."""

    __test__ = False

    def __init__(self, base_ws: str, room_id: int, token: str) -> None:
        self.base, self.room_id, self.token = base_ws, room_id, token
        self.stream: list[dict[str, Any]] = []
        self.closes: list[int | None] = []
        self.have: int | None = None  # highest seq processed (from a frame, welcome or resync)
        self.epoch: str | None = None
        self.welcomed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ws: Any = None
        self._stop = False

    def url(self) -> str:
        u = f"{self.base}?room={self.room_id}&token={self.token}"
        if self.have is not None and self.epoch:
            u += f"&last_seq={self.have}&epoch={self.epoch}"
        return u

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._stop:
            try:
                ws = await websockets.connect(self.url(), max_size=2**20, open_timeout=5)
            except (OSError, TimeoutError, websockets.InvalidHandshake):
                await asyncio.sleep(0.2)
                continue
            self._ws = ws
            try:
                async for raw in ws:
                    self._take(orjson.loads(raw))
            except websockets.ConnectionClosed:
                pass
            self.closes.append(ws.close_code)
            if ws.close_code not in RECONNECT_CODES:
                return
            await asyncio.sleep(0.1)

    def _take(self, msg: dict[str, Any]) -> None:
        self.stream.append(msg)
        kind = msg.get("type")
        if kind in ("welcome", "resync"):
            self.epoch = msg["epoch"]
            if kind == "resync" or not msg["resumed"] or self.have is None:
                self.have = int(msg["seq"])
            self.welcomed.set()
        elif "seq" in msg:
            self.have = int(msg["seq"])

    async def stop(self) -> None:
        self._stop = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, 5)

    def resyncs(self) -> int:
        """In-band resyncs plus resync welcomes (a welcome after the first that did not resume:
        the client was given the whole state anew, which is explicit, never a silent gap)."""
        welcomes = [m for m in self.stream if m.get("type") == "welcome"]
        fresh = sum(1 for m in welcomes[1:] if not m["resumed"])
        return fresh + sum(1 for m in self.stream if m.get("type") == "resync")

    def check_stream(self) -> int:
        """Assert every frame came exactly once, in order, within each stretch that begins at a
        welcome or a resync (a resumed welcome continues the stretch); the last seq processed."""
        expect: int | None = None
        for i, msg in enumerate(self.stream):
            kind = msg.get("type")
            if kind in ("welcome", "resync"):
                if kind == "resync" or not msg["resumed"] or expect is None:
                    expect = int(msg["seq"]) + 1
            elif "seq" in msg:
                assert expect is not None, "a frame before any welcome"
                assert msg["seq"] == expect, (i, msg, [m.get("seq") for m in self.stream])
                expect += 1
        assert expect is not None
        return expect - 1

    def schedule_ids(self) -> list[int]:
        return [int(m["schedule_id"]) for m in self.stream if "schedule_id" in m]
