"""The listening site: a protocol-level router in front of aiohttp.

Every accepted connection starts with a :class:`Router`, which holds it until its first request
head is complete. A valid WebSocket upgrade to ``/ws`` is taken by the lean viewer path
(:meth:`Endpoint.upgrade`: no aiohttp object and no task per viewer once it has joined); every
other connection is handed to aiohttp *unchanged* — a fresh request handler
(:func:`~livecommerce.http_server.new_handler`) gets the transport and the bytes read so far — so
HTTP behaves exactly as with a plain ``TCPSite``, except that a malformed request is answered in
the JSON error shape.

Hostile or broken clients (README, "Reliability"), for the lean path and aiohttp alike:

* a connection that has not sent its first complete head within
  ``server.request_head_timeout_seconds`` is answered 408 ``request_timeout`` and closed;
* at most ``server.max_unfinished_heads_per_ip`` connections per client address may be waiting
  for their first head; one more is answered 429 ``too_many_connections`` and closed at once;
* a head over ``MAX_HEAD_BYTES`` is answered 431 ``request_header_fields_too_large``;
* what does not start like a request line (a TLS hello, garbage) goes to aiohttp at once, which
  answers 400 ``bad_request``.

Later requests on a keep-alive connection are aiohttp's: ``server.keepalive_timeout_seconds``
closes a connection idle (or stuck in an unfinished head) that long. Each refusal is logged as
one rate-limited warning line.

A WebSocket upgrade sent on a keep-alive connection that already carried an HTTP request is
aiohttp's, and refused (503 ``unavailable``): WebSocket clients open a fresh connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from aiohttp import web
from yarl import URL

from livecommerce import keys
from livecommerce.config import ServerConfig
from livecommerce.http_server import RateLimitedLog, new_handler, raw_error
from livecommerce.realtime.endpoint import Endpoint
from livecommerce.realtime.frames import append_bytes
from livecommerce.realtime.upgrade import parse_upgrade, request_target, targets_ws

log = logging.getLogger("livecommerce.site")
refusals = RateLimitedLog(log)

MAX_HEAD_BYTES = 16384
HEAD_TIMEOUT = raw_error(
    408, "Request Timeout", "request_timeout", "the request head did not arrive in time"
)
TOO_MANY = raw_error(
    429,
    "Too Many Requests",
    "too_many_connections",
    "too many unfinished requests from this address",
)
HEAD_TOO_LARGE = raw_error(
    431,
    "Request Header Fields Too Large",
    "request_header_fields_too_large",
    f"the request head is larger than {MAX_HEAD_BYTES} bytes",
)
_METHOD_START = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")


class Router(asyncio.Protocol):
    """A new connection until its first request head says who serves it."""

    __slots__ = ("buf", "ip", "site", "timer", "transport")

    def __init__(self, site: LeanSite) -> None:
        self.site = site
        self.buf: bytes | bytearray = b""
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.ip = ""  # set while counted against the address's unfinished heads

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        t = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = t.get_extra_info("peername")
        ip = str(peer[0]) if peer else "?"
        site = self.site
        if site.unfinished.get(ip, 0) >= site.cfg.max_unfinished_heads_per_ip:
            refusals.warning("too many unfinished request heads from %s: refused", ip)
            t.write(TOO_MANY)
            t.close()
            return
        self.transport, self.ip = t, ip
        site.unfinished[ip] = site.unfinished.get(ip, 0) + 1
        site.pending.add(self)
        self.timer = asyncio.get_running_loop().call_later(
            site.cfg.request_head_timeout_seconds, self.timed_out
        )

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        buf = self.buf = append_bytes(self.buf, data)
        if buf[0] not in _METHOD_START:
            self.delegate()  # not HTTP: aiohttp answers 400 at once
            return
        end = buf.find(b"\n\r\n")
        if end < 0:
            end = buf.find(b"\n\n")
        if end < 0:
            if len(buf) > MAX_HEAD_BYTES:
                self.refuse(HEAD_TOO_LARGE)
            return
        line_end = buf.find(b"\r\n")
        target = request_target(bytes(buf[:line_end])) if line_end > 0 else None
        head_end = buf.find(b"\r\n\r\n")
        up = None
        if target is not None and targets_ws(target) and 0 < head_end <= MAX_HEAD_BYTES:
            up = parse_upgrade(bytes(buf[:head_end]))
        if up is None:
            self.delegate()
            return
        transport = self._decided()
        if transport is not None:
            self.site.endpoint().upgrade(transport, up, bytes(buf[head_end + 4 :]))

    def eof_received(self) -> bool | None:
        if self.transport is None:
            return None
        proto = self.delegate()
        return proto.eof_received() if proto is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._decided()

    def timed_out(self) -> None:
        """No complete head within ``server.request_head_timeout_seconds``."""
        self.timer = None
        refusals.warning("request head not complete in time from %s: closed", self.ip)
        self.refuse(HEAD_TIMEOUT)

    def refuse(self, response: bytes) -> None:
        """Answer ``response`` (a complete JSON error) and close."""
        transport = self._decided()
        if transport is not None and not transport.is_closing():
            transport.write(response)
            transport.close()

    def _decided(self) -> asyncio.Transport | None:
        """Stop sniffing; the transport, unless this connection was decided already."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        site = self.site
        site.pending.discard(self)
        if self.ip:
            left = site.unfinished.get(self.ip, 1) - 1
            if left > 0:
                site.unfinished[self.ip] = left
            else:
                site.unfinished.pop(self.ip, None)
            self.ip = ""
        transport, self.transport = self.transport, None
        return transport

    def delegate(self) -> asyncio.Protocol | None:
        """Hand the connection, and the bytes read so far, to a new aiohttp request handler."""
        transport = self._decided()
        server = self.site.runner.server
        if transport is None or server is None or transport.is_closing():
            return None
        proto = new_handler(server)
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

    __slots__ = (
        "_endpoint",
        "backlog",
        "cfg",
        "host",
        "pending",
        "port",
        "reuse_port",
        "runner",
        "unfinished",
    )

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
        self.unfinished: dict[str, int] = {}  # client address -> connections without a head yet
        settings = runner.app.get(keys.SETTINGS) if runner.app is not None else None
        self.cfg = settings.server if settings is not None else ServerConfig()
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
