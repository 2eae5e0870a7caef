"""The listening site: a protocol-level router in front of aiohttp.

Every accepted connection starts with a :class:`Router`, which reads the first request head. A
valid WebSocket upgrade to ``/ws`` is taken by the lean viewer path
(:meth:`Endpoint.upgrade`: no aiohttp object and no task per viewer once it has joined); every
other connection is handed to aiohttp *unchanged* — a fresh ``RequestHandler`` from
``runner.server`` gets the transport and the bytes read so far — so HTTP behaves exactly as with
a plain ``TCPSite``. The router decides on the request line when it can (anything but
``GET /ws`` goes to aiohttp at once), holds at most ``MAX_HEAD_BYTES``, and hands a connection
that has not finished its head within ``SNIFF_SECONDS`` to aiohttp as well.

A WebSocket upgrade sent on a keep-alive connection that already carried an HTTP request is
aiohttp's, and refused (503 ``unavailable``): WebSocket clients open a fresh connection.
"""

from __future__ import annotations

import asyncio
from typing import cast

from aiohttp import web
from yarl import URL

from livecommerce import keys
from livecommerce.realtime.endpoint import Endpoint
from livecommerce.realtime.frames import append_bytes
from livecommerce.realtime.upgrade import parse_upgrade, request_target, targets_ws

MAX_HEAD_BYTES = 16384
SNIFF_SECONDS = 10.0


class Router(asyncio.Protocol):
    """A new connection until its first request head says who serves it."""

    __slots__ = ("buf", "site", "timer", "transport")

    def __init__(self, site: LeanSite) -> None:
        self.site = site
        self.buf: bytes | bytearray = b""
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.site.pending.add(self)
        self.timer = asyncio.get_running_loop().call_later(SNIFF_SECONDS, self.delegate)

    def data_received(self, data: bytes) -> None:
        buf = self.buf = append_bytes(self.buf, data)
        if not b"GET ".startswith(buf[:4]):
            self.delegate()
            return
        line_end = buf.find(b"\r\n")
        if line_end < 0:
            if len(buf) > MAX_HEAD_BYTES:
                self.delegate()
            return
        target = request_target(bytes(buf[:line_end]))
        if target is None or not targets_ws(target):
            self.delegate()
            return
        end = buf.find(b"\r\n\r\n")
        if end < 0 or end > MAX_HEAD_BYTES:
            if len(buf) > MAX_HEAD_BYTES:
                self.delegate()
            return
        up = parse_upgrade(bytes(buf[:end]))
        if up is None:
            self.delegate()
            return
        transport = self._decided()
        if transport is not None:
            self.site.endpoint().upgrade(transport, up, bytes(buf[end + 4 :]))

    def eof_received(self) -> bool | None:
        proto = self.delegate()
        return proto.eof_received() if proto is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._decided()

    def _decided(self) -> asyncio.Transport | None:
        """Stop sniffing; the transport, unless this connection was decided already."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.site.pending.discard(self)
        transport, self.transport = self.transport, None
        return transport

    def delegate(self) -> asyncio.Protocol | None:
        """Hand the connection, and the bytes read so far, to a new aiohttp request handler."""
        transport = self._decided()
        server = self.site.runner.server
        if transport is None or server is None or transport.is_closing():
            return None
        proto = server()
        transport.set_protocol(proto)
        proto.connection_made(transport)
        buf, self.buf = self.buf, b""
        if buf:
            proto.data_received(bytes(buf))
        return proto

    def close(self) -> None:
        transport = self._decided()
        if transport is not None:
            transport.close()


class LeanSite(web.BaseSite):
    """A TCP site like ``web.TCPSite`` whose connections go through :class:`Router`."""

    __slots__ = ("_endpoint", "backlog", "host", "pending", "port", "reuse_port", "runner")

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        *,
        backlog: int = 128,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self.runner = runner
        self.host, self.port, self.backlog, self.reuse_port = host, port, backlog, reuse_port
        self.pending: set[Router] = set()
        self._endpoint: Endpoint | None = None

    @property
    def name(self) -> str:
        return str(URL.build(scheme="http", host=self.host, port=self.port))

    def endpoint(self) -> Endpoint:
        if self._endpoint is None:
            self._endpoint = self.runner.app[keys.VIEWER_ENDPOINT]
        return self._endpoint

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Router(self),
            self.host,
            self.port,
            backlog=self.backlog,
            reuse_port=self.reuse_port or None,
        )
        sockets = self._server.sockets
        if sockets:
            self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for router in list(self.pending):
            router.close()
        await super().stop()


async def start_site(
    runner: web.AppRunner, host: str, port: int, *, backlog: int = 128, reuse_port: bool = False
) -> LeanSite:
    """Listen on ``host:port`` with the lean viewer path in front of ``runner``'s aiohttp app
    (``runner.setup()`` done). The one way the server and the tests start listening."""
    site = LeanSite(runner, host, port, backlog=backlog, reuse_port=reuse_port)
    await site.start()
    return site
