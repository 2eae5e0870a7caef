"""A test viewer on a real WebSocket (the `websockets` client) that records what it receives."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection


class TestViewer:
    __test__ = False

    def __init__(self, base_ws: str, room_id: int, token: str) -> None:
        self.base = base_ws
        self.room_id = room_id
        self.token = token
        self.frames: list[dict[str, Any]] = []  # every sequenced frame, in arrival order
        self.welcomes: list[dict[str, Any]] = []
        self.others: list[dict[str, Any]] = []
        self.ws: ClientConnection | None = None
        self.epoch: str | None = None
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    @property
    def last_seq(self) -> int:
        if self.frames:
            return int(self.frames[-1]["seq"])
        return int(self.welcomes[-1]["seq"]) if self.welcomes else 0

    def url(self, resume: bool) -> str:
        u = f"{self.base}?room={self.room_id}&token={self.token}"
        if resume and self.welcomes:
            u += f"&last_seq={self.last_seq}&epoch={self.epoch}"
        return u

    async def connect(self, base: str | None = None, *, resume: bool = False) -> dict[str, Any]:
        if base is not None:
            self.base = base
        self.closed.clear()
        self.ws = await websockets.connect(self.url(resume), max_size=2**20)
        first = orjson.loads(await self.ws.recv())
        self.welcomes.append(first)
        self.epoch = first.get("epoch")
        self._reader = asyncio.create_task(self._read(self.ws))
        return first

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                msg = orjson.loads(raw)
                if "seq" in msg and msg.get("type") not in ("welcome", "resync"):
                    self.frames.append(msg)
                else:
                    self.others.append(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed.set()

    async def send(self, obj: Any) -> None:
        assert self.ws is not None
        await self.ws.send(orjson.dumps(obj).decode())

    async def drop(self) -> None:
        """Abrupt disconnect (network switch): no close handshake."""
        assert self.ws is not None
        self.ws.transport.abort()
        await self.closed.wait()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await self._reader

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == kind]

    def seqs(self) -> list[int]:
        return [int(f["seq"]) for f in self.frames]


async def close_code(ws: ClientConnection) -> int | None:
    """Read until the server closes; the close code it sent."""
    try:
        while True:
            await ws.recv()
    except websockets.ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else None


async def wait_until(pred: Any, within: float = 15.0, interval: float = 0.02) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


def assert_contiguous(viewer: TestViewer, first: int, last: int) -> None:
    """The viewer received exactly seqs first..last, each once, in order."""
    assert viewer.seqs() == list(range(first, last + 1)), viewer.seqs()
