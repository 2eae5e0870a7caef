"""A lean WebSocket viewer on a raw asyncio protocol: the loader must never be the bottleneck.

Per connection it holds one small object and no task. The handshake is written by hand, server
frames (unmasked) are parsed straight out of ``data_received``, and a published room frame is
checked without a JSON parse: every one starts with ``{"seq":N,"ts":T,`` (see
``lua/publish_core.lua``), so sequence accounting and latency cost two ``find`` calls. Only
``welcome``/``resync``/``error`` frames are decoded with orjson. Client frames (pong, close,
socket.io pongs) are masked as RFC 6455 requires.

``mode="socketio"`` speaks Engine.IO v4 / Socket.IO v5 over the same framing, for the side-by-side
benchmark with python-socketio (events ``42["goods_push",{"seq":..,"ts":..}]``).
"""

from __future__ import annotations

import asyncio
import base64
import errno
import hashlib
import os
import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

import orjson

from livecommerce.loadtest.hist import Histogram

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455
IP_BIND_ADDRESS_NO_PORT = 24  # Linux: let connect() pick the port per (src, dst) pair
MAX_HEADER = 16384

# One line per limit the OS can refuse with, saying what was hit and what to change.
OS_LIMITS = {
    errno.EMFILE: "EMFILE: a worker hit its RLIMIT_NOFILE (per-process open files); "
    "use more --workers so each holds fewer sockets",
    errno.ENFILE: "ENFILE: the system-wide open-file table is full; raise fs.file-max",
    errno.EADDRNOTAVAIL: "EADDRNOTAVAIL: ephemeral ports exhausted for a source address; "
    "add source addresses (--sources) or widen net.ipv4.ip_local_port_range",
    errno.EADDRINUSE: "EADDRINUSE: no free local port for a source address; add --sources",
    errno.ENOBUFS: "ENOBUFS: kernel socket memory exhausted; raise net.ipv4.tcp_mem",
    errno.ECONNREFUSED: "ECONNREFUSED: nothing listening (server down, or its listen backlog "
    "overflowed: raise net.core.somaxconn / lower --ramp)",
    errno.ECONNRESET: "ECONNRESET: connection reset by the server",
    errno.ETIMEDOUT: "ETIMEDOUT: connect timed out (listen backlog full? lower --ramp)",
}


def os_reason(exc: OSError) -> str:
    if exc.errno in OS_LIMITS:
        return OS_LIMITS[exc.errno]
    name = errno.errorcode.get(exc.errno or 0, "OSError")
    return f"{name}: {exc.strerror or exc}"


class ConnectFailure(Exception):
    """A viewer could not reach ``welcome``; ``reason`` is the one-line cause."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Stats:
    """What the viewers of one worker process measure, updated in place (one loop: no locks)."""

    def __init__(self) -> None:
        self.latency = Histogram()  # every live goods_push delivery: receipt - ts
        self.replayed = 0  # frames received as a resume's missed frames (not live fan-out)
        self.connect = Histogram()  # TCP connect + upgrade + welcome
        self.push_max: dict[tuple[int, int], float] = {}  # (room, seq) -> slowest receipt
        self.push_count: dict[tuple[int, int], int] = {}
        self.deliveries = 0
        self.frames = 0
        self.failures: Counter[str] = Counter()
        self.disconnects: Counter[str] = Counter()
        self.resumed = 0
        self.resynced = 0
        self.alive = 0  # viewers connected past welcome right now
        self.ever = 0  # viewers that reached a welcome at least once

    def push_received(self, room: int, seq: int, ms: float) -> None:
        self.latency.record(ms)
        self.deliveries += 1
        key = (room, seq)
        if ms > self.push_max.get(key, -1.0):
            self.push_max[key] = ms
        self.push_count[key] = self.push_count.get(key, 0) + 1


class Viewer(asyncio.Protocol):
    """One viewer connection; reused across reconnects so its sequence accounting carries on."""

    def __init__(
        self,
        vid: int,
        room: int,
        target: int,
        stats: Stats,
        on_lost: Callable[[Viewer, str], None],
        *,
        mode: str = "livecommerce",
    ) -> None:
        self.vid = vid
        self.room = room
        self.target = target
        self.stats = stats
        self.on_lost = on_lost
        self.socketio = mode == "socketio"
        self.token = ""
        self.transport: asyncio.Transport | None = None
        self.buf: bytes | bytearray = b""
        self.frag: bytearray | None = None
        self.upgraded = False
        self.request = b""
        self.accept = b""
        self.waiter: asyncio.Future[None] | None = None
        self.last = -1  # highest seq seen; -1 before the first welcome
        self.epoch = ""
        self.missing = 0
        self.dups = 0
        self.alive = False  # past welcome and connected
        self.dropping = False  # we are closing it on purpose
        self.close_code: int | None = None
        self.error_code: str | None = None
        self.welcomes = 0
        self.replay = 0  # missed frames still to come after a resumed welcome

    # ------------------------------------------------------------------ handshake

    def prepare(self, host: str, port: int, path: str, query: str) -> None:
        key = base64.b64encode(os.urandom(16))
        self.accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        self.request = (
            f"GET {path}?{query} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.buf = b""
        self.frag = None
        self.upgraded = False
        self.replay = 0
        self.close_code = None
        self.error_code = None
        self.dropping = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        was_alive, self.alive = self.alive, False
        if was_alive:
            self.stats.alive -= 1
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectFailure(self._why("closed before welcome", exc)))
            return
        if was_alive and not self.dropping:
            self.on_lost(self, self._why("connection lost", exc))

    def _why(self, default: str, exc: Exception | None) -> str:
        if self.error_code:
            return f"close {self.close_code} {self.error_code}"
        if self.close_code is not None:
            return f"close {self.close_code}"
        if isinstance(exc, OSError):
            return os_reason(exc)
        return default

    def _fail(self, reason: str) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectFailure(reason))
        if self.transport is not None:
            self.transport.abort()

    def _upgrade(self, data: bytes) -> bytes | None:
        self.buf = bytes(self.buf) + data if self.buf else data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > MAX_HEADER:
                self._fail("handshake: response headers too long")
            return None
        head = bytes(self.buf[:end])
        rest = bytes(self.buf[end + 4 :])
        self.buf = b""
        status = head.split(b"\r\n", 1)[0]
        if not status.startswith(b"HTTP/1.1 101"):
            parts = status.split(b" ", 2)
            self._fail(f"handshake: http {parts[1].decode() if len(parts) > 1 else '?'}")
            return None
        if b"\r\nsec-websocket-accept: " + self.accept.lower() not in head.lower():
            self._fail("handshake: bad Sec-WebSocket-Accept")
            return None
        self.upgraded = True
        return rest

    # ------------------------------------------------------------------ frames

    def data_received(self, data: bytes) -> None:
        if not self.upgraded:
            rest = self._upgrade(data)
            if rest is None:
                return
            data = rest
        buf: bytes | bytearray
        if self.buf:
            self.buf += data
            buf = self.buf
        else:
            buf = data
        now = time.time() * 1000.0
        n = len(buf)
        i = 0
        while n - i >= 2:
            b1 = buf[i + 1]
            ln = b1 & 0x7F
            h = 2
            if ln == 126:
                if n - i < 4:
                    break
                ln = (buf[i + 2] << 8) | buf[i + 3]
                h = 4
            elif ln == 127:
                if n - i < 10:
                    break
                ln = int.from_bytes(buf[i + 2 : i + 10], "big")
                h = 10
            if b1 & 0x80:
                self._fail("protocol: masked server frame")
                return
            end = i + h + ln
            if end > n:
                break
            self._frame(buf[i], buf[i + h : end], now)
            i = end
        self.buf = bytearray(buf[i:]) if i < n else b""

    def _frame(self, b0: int, payload: bytes | bytearray, now: float) -> None:
        op = b0 & 0x0F
        fin = b0 & 0x80
        if op == 0 and self.frag is not None:  # continuation
            self.frag += payload
            if fin:
                payload, self.frag = bytes(self.frag), None
                self._text(payload, now)
            return
        if op == 1:
            if not fin:
                self.frag = bytearray(payload)
                return
            self._text(payload, now)
        elif op == 9:
            self.send(0xA, bytes(payload))
        elif op == 8:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.send(0x8, bytes(payload[:2]))
            if self.transport is not None:
                self.transport.close()

    def _text(self, p: bytes | bytearray, now: float) -> None:
        if self.socketio:
            self._socketio(p, now)
            return
        if p[:7] == b'{"seq":':
            self._sequenced(p, 7, now)
            return
        self.stats.frames += 1
        if p[:17] in (b'{"type":"welcome"', b'{"type":"resync",'):
            self._welcome(orjson.loads(p))
        elif p[:15] == b'{"type":"error"':
            msg = orjson.loads(p)
            self.error_code = str(msg.get("code"))

    def _sequenced(self, p: bytes | bytearray, start: int, now: float) -> None:
        """A published frame ``{"seq":N,"ts":T,...}``: order/dup accounting, push latency."""
        self.stats.frames += 1
        c = p.find(b",", start)
        seq = int(p[start:c])
        last = self.last
        if seq <= last:
            self.dups += 1
            return
        if seq != last + 1 and last >= 0:
            self.missing += seq - last - 1
        self.last = seq
        if self.replay:
            self.replay -= 1
            self.stats.replayed += 1
            return
        c2 = p.find(b",", c + 6)
        if p.find(b'"goods_push"', c2, c2 + 24) >= 0:
            self.stats.push_received(self.room, seq, now - int(p[c + 6 : c2]))

    def _welcome(self, msg: dict[str, Any]) -> None:
        seq = int(msg["seq"])
        self.epoch = str(msg.get("epoch") or "")
        if self.welcomes and msg["type"] == "welcome" and msg.get("resumed"):
            self.stats.resumed += 1  # the missed frames follow; `last` moves with them
            self.replay = int(msg.get("missed") or 0)
        elif self.welcomes:
            self.stats.resynced += 1
            if seq > self.last:
                self.missing += seq - self.last  # frames this viewer will never see
            self.last = seq
        else:
            self.last = seq
        self._welcomed()

    def _welcomed(self) -> None:
        if not self.welcomes:
            self.stats.ever += 1
        self.welcomes += 1
        if not self.alive:
            self.stats.alive += 1
        self.alive = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _socketio(self, p: bytes | bytearray, now: float) -> None:
        if p[:2] == b"42":
            start = p.find(b'{"seq":')
            if start >= 0:
                self._sequenced(p, start + 7, now)
            return
        self.stats.frames += 1
        if p[:1] == b"2":  # Engine.IO ping -> pong
            self.send(0x1, b"3" + bytes(p[1:]))
        elif p[:2] == b"40":  # Socket.IO connected to "/"
            if not self.welcomes:
                self.last = 0
            self._welcomed()
        elif p[:1] == b"0":  # Engine.IO open -> connect to the default namespace
            self.send(0x1, b"40")
        elif p[:2] == b"44":
            self._fail("socket.io: connect refused")

    def send(self, opcode: int, payload: bytes) -> None:
        """One masked client frame (pongs, close, socket.io control: all tiny)."""
        t = self.transport
        if t is None or t.is_closing():
            return
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = bytes((0x80 | opcode, 0x80 | n)) + mask
        else:
            header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big") + mask
        t.write(header + bytes(b ^ mask[i & 3] for i, b in enumerate(payload)))

    def drop(self) -> None:
        """Abrupt disconnect (a phone switching networks): no close handshake."""
        self.dropping = True
        if self.alive:
            self.stats.alive -= 1
        self.alive = False
        if self.transport is not None:
            self.transport.abort()


async def open_viewer(
    viewer: Viewer,
    host: str,
    port: int,
    path: str,
    query: str,
    source: str | None,
    wait_s: float,
) -> None:
    """Connect ``viewer`` (optionally from source address ``source``) and wait for its welcome.

    Raises ConnectFailure with a one-line reason.
    """
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    except OSError as exc:
        raise ConnectFailure(os_reason(exc)) from None
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source:
            # Bind the address only; the port is picked at connect() per destination, so one
            # source address gives a full ephemeral range towards each server port.
            sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((source, 0))
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), wait_s)
    except OSError as exc:
        sock.close()
        raise ConnectFailure(os_reason(exc)) from None
    except TimeoutError:
        sock.close()
        raise ConnectFailure("connect timeout (listen backlog full? lower --ramp)") from None
    viewer.prepare(host, port, path, query)
    viewer.waiter = loop.create_future()
    try:
        await loop.create_connection(lambda: viewer, sock=sock)
        await asyncio.wait_for(asyncio.shield(viewer.waiter), wait_s)
    except TimeoutError:
        viewer._fail("handshake timeout: no welcome in time")
        raise ConnectFailure("handshake timeout: no welcome in time") from None
    except OSError as exc:
        sock.close()
        raise ConnectFailure(os_reason(exc)) from None
    finally:
        if viewer.waiter.done() and not viewer.waiter.cancelled():
            viewer.waiter.exception()  # consumed: no "never retrieved" warning
        viewer.waiter = None
    viewer.stats.connect.record((time.perf_counter() - started) * 1000.0)
