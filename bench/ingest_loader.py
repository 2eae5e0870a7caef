"""The lean loader of bench/ingest.py: one process's viewers, on raw asyncio transports.

Like wrk, it does as little as it can while the burst runs, so that its CPU (on the same cores
as the server under test) stays small: an HTTP/1.1 keep-alive client and a WebSocket client on
``asyncio.Protocol`` (uvloop when importable), with every request and frame built before the
burst — request heads and bodies (only ``sent_at`` is written at send time), ``track`` frames
encoded and masked (RFC 6455: a random key per frame, chosen beforehand) — and replies parsed
only as far as needed (status line, Content-Length / Retry-After, the JSON body; server frames
by their length header). Each socket runs as callbacks (no task, no future, no sleep per
frame), in either ``--socket-mode``.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import gc
import hashlib
import os
import random
import struct
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from livecommerce.auth.tokens import anonymous_subject, issue_token
from livecommerce.config import DEV_SECRET

try:
    import uvloop

    run_loop: Callable[[Any], Any] = uvloop.run
except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
    run_loop = asyncio.run

TYPES = ("page_view", "goods_impression", "bubble_impression", "bubble_click", "share")
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEAD = 65536
TIMEOUT = 120.0  # a request's answer (the aiohttp loader's ClientTimeout)


def uuid7(ms: int, rng: random.Random) -> str:
    """A version 7 UUID (RFC 9562 §5.7) for the Unix time ``ms``, as the viewer client makes
    its event ids (clients/miniprogram/livecommerce-socket.js): 48 bits of milliseconds, the
    version, 74 random bits, the variant."""
    bits = (ms << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62)
    return str(uuid.UUID(int=bits | rng.getrandbits(62)))


def uuid4(ms: int, rng: random.Random) -> str:
    """A random (v4) UUID (RFC 9562 §5.4), as clients that do not order their ids make them."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def make_events(n: int, room: int, dup_share: float, bad_share: float, rng: random.Random,
                make_id: Callable[[int, random.Random], str] = uuid7,
                ) -> list[dict[str, Any]]:  # fmt: skip
    """``n`` events for one viewer: valid ones, re-sends of earlier ones, invalid ones; the
    valid ones' ids from ``make_id(ts, rng)`` (as the client library: v7 from the event's ts)."""
    out: list[dict[str, Any]] = []
    now = int(time.time() * 1000)
    for i in range(n):
        r = rng.random()
        if out and r < dup_share:
            out.append(dict(rng.choice(out)))
        elif r < dup_share + bad_share:
            out.append({"id": "not-a-uuid", "type": "page_view"} if i % 2 else
                       {"id": str(uuid.uuid4()), "type": "no_such_type"})  # fmt: skip
        else:
            ts = now - rng.randint(0, 5000)
            out.append({
                "id": make_id(ts, rng), "type": rng.choice(TYPES),
                "ts": ts, "room_id": room,
                "goods_id": rng.randint(1, 3), "push_seq": rng.randint(1, 20),
                "page": "pages/live/live",
            })  # fmt: skip
    return out


class Tally:
    """One loader process's view of the burst (wall-clock times, comparable across processes)."""

    def __init__(self) -> None:
        self.acked: list[str] = []
        self.sent = 0
        self.duplicates = 0
        self.rejected = 0
        self.retries_503 = 0
        self.failed_batches = 0
        self.ack_ms: list[float] = []
        self.last_ack = 0.0

    def account(self, ids: list[str], body: dict[str, Any], started: float) -> None:
        """An answer to the batch whose event ids are ``ids`` (in order)."""
        if rejected := body["rejected"]:
            bad = sorted({r["index"] for r in rejected})
            prev = 0
            for i in bad:  # the accepted runs between the rejected indexes, as slices
                self.acked.extend(ids[prev:i])
                prev = i + 1
            self.acked.extend(ids[prev:])
            self.rejected += len(bad)
        else:
            self.acked.extend(ids)
        self.duplicates += body["duplicates"]
        now = time.time()
        self.ack_ms.append((now - started) * 1000)
        if now > self.last_ack:
            self.last_ack = now


def mask(payload: bytes, key: bytes) -> bytes:
    """``payload`` XOR the 4-byte ``key`` repeated (one big-int XOR)."""
    n = len(payload)
    if not n:
        return b""
    rep = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(rep, "little")).to_bytes(n, "little")


def client_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """A complete, masked client frame (RFC 6455 5.2), with a fresh random masking key."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0xFF, n)
    key = os.urandom(4)
    return head + key + mask(payload, key)


def _header(head: bytes, name: bytes) -> bytes | None:
    """The value of header ``name`` (lower case) in the lower-cased ``head``, or None."""
    i = head.find(b"\r\n" + name + b":")
    if i < 0:
        return None
    j = head.find(b"\r\n", i + 2)
    return head[i + len(name) + 3 : j if j >= 0 else len(head)].strip()


def _dechunk(buf: bytes, pos: int) -> tuple[bytes, int] | None:
    """A chunked body starting at ``buf[pos]``: (body, end), or None if not complete yet."""
    parts = []
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(buf[pos:eol].split(b";", 1)[0], 16)
        if size == 0:
            end = buf.find(b"\r\n\r\n", eol)  # no trailers expected: the empty line
            return (b"".join(parts), end + 4) if end >= 0 else None
        if len(buf) < eol + 2 + size + 2:
            return None
        parts.append(buf[eol + 2 : eol + 2 + size])
        pos = eol + 2 + size + 2


class HttpConn(asyncio.Protocol):
    """One HTTP/1.1 keep-alive connection: one request at a time, the response parsed by hand."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.waiter: asyncio.Future[tuple[int, float, bytes]] | None = None
        self.keep = True
        self.closed = False
        self.until_close: tuple[int, float, int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def request(self, data: bytes) -> asyncio.Future[tuple[int, float, bytes]]:
        """Send ``data`` (a whole request); the future's (status, Retry-After s, body)."""
        assert self.transport is not None
        assert self.waiter is None
        self.waiter = waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return waiter

    def data_received(self, data: bytes) -> None:
        buf = self.buf = self.buf + data if self.buf else data
        if self.waiter is None:
            return
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                self._fail(ConnectionError("response head too large"))
            return
        try:
            head = buf[:end].lower()
            status = int(buf[9:12])
            length = _header(head, b"content-length")
            start = end + 4
            if length is not None:
                stop = start + int(length)
                if len(buf) < stop:
                    return
                body = buf[start:stop]
            elif b"chunked" in (_header(head, b"transfer-encoding") or b""):
                got = _dechunk(buf, start)
                if got is None:
                    return
                body, stop = got
            else:
                body, stop = b"", -1
            after = _header(head, b"retry-after")
            retry_after = float(after) if after is not None else 1.0
        except ValueError as exc:
            self._fail(ConnectionError(f"bad response: {exc}"))
            return
        if stop < 0:  # the body runs to the end of the connection (see connection_lost)
            self.until_close = (status, retry_after, start)
            return
        self.buf = buf[stop:]
        if _header(head, b"connection") == b"close" or head.startswith(b"http/1.0"):
            self.keep = False
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((status, retry_after, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.keep = False
        waiter, self.waiter = self.waiter, None
        if waiter is not None and self.until_close is not None and not waiter.done():
            status, retry_after, start = self.until_close  # a body delimited by the close
            waiter.set_result((status, retry_after, self.buf[start:]))
        elif waiter is not None and not waiter.done():
            waiter.set_exception(exc or ConnectionError("connection closed"))

    def _fail(self, exc: BaseException) -> None:
        self.keep = False
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()


class HttpPool:
    """At most ``limit`` keep-alive connections to one server, opened when first needed (as
    aiohttp's ``TCPConnector(limit=…)``); a request waits for a free one."""

    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host, self.port = host, port
        self.slots = asyncio.Semaphore(limit)
        self.idle: list[HttpConn] = []

    async def request(self, pre: bytes, post: bytes) -> tuple[int, float, bytes]:
        """``pre`` + the send time in ms + ``post`` on a connection: (status, Retry-After,
        body). Raises OSError (ConnectionError) or TimeoutError."""
        async with self.slots:
            conn = None
            while self.idle:
                conn = self.idle.pop()
                if not conn.closed:
                    break
                conn = None
            loop = asyncio.get_running_loop()
            if conn is None:
                _, conn = await loop.create_connection(HttpConn, self.host, self.port)
            # sent_at: the real send time (the server corrects clock skew by it).
            waiter = conn.request(b"%b%d%b" % (pre, int(time.time() * 1000), post))
            timer = loop.call_later(TIMEOUT, conn._fail, TimeoutError())
            try:
                result = await waiter
            finally:
                timer.cancel()
            if conn.keep and not conn.closed:
                self.idle.append(conn)
            elif conn.transport is not None:
                conn.transport.close()
            return result

    def close(self) -> None:
        for conn in self.idle:
            if conn.transport is not None:
                conn.transport.close()
        self.idle.clear()


class WsClient(asyncio.Protocol):
    """A client WebSocket: the upgrade, then the server's (unmasked) frames. Text messages go
    to ``on_text``; the end of the socket (a close frame, a binary message, the connection
    lost) to ``on_end``, once. By default both queue for :meth:`receive`."""

    def __init__(self, key: str) -> None:
        self.transport: asyncio.Transport | None = None
        self.key = key
        self.buf = b""
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.frag: bytearray | None = None
        self.ended = False
        self.closing = False  # our close frame sent
        self.inbox: collections.deque[bytes | None] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None
        self.on_text: Callable[[bytes], None] = self._queue
        self.on_end: Callable[[], None] = self._queue_end

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def write(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        pos = 0
        if not self.upgraded.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            head = buf[:end].lower()
            accept = base64.b64encode(hashlib.sha1(self.key.encode() + WS_GUID).digest())
            if (
                not head.startswith(b"http/1.1 101")
                or _header(head, b"sec-websocket-accept") != accept.lower()
            ):
                self.upgraded.set_exception(ConnectionError(bytes(buf[:200]).decode("latin-1")))
                self.ended = True
                if self.transport is not None:
                    self.transport.close()
                return
            self.upgraded.set_result(None)
            pos = end + 4
        n = len(buf)
        while n - pos >= 2 and not self.ended:
            b0, b1 = buf[pos], buf[pos + 1]
            length, p = b1 & 0x7F, pos + 2
            if length == 126:
                if n - p < 2:
                    break
                length, p = int.from_bytes(buf[p : p + 2], "big"), p + 2
            elif length == 127:
                if n - p < 8:
                    break
                length, p = int.from_bytes(buf[p : p + 8], "big"), p + 8
            key = b""
            if b1 & 0x80:  # servers do not mask, but it costs nothing to accept
                if n - p < 4:
                    break
                key, p = buf[p : p + 4], p + 4
            if n - p < length:
                break
            payload = buf[p : p + length]
            pos = p + length
            self._frame(b0, mask(payload, key) if key else payload)
        self.buf = buf[pos:] if pos < n else b""

    def _frame(self, b0: int, payload: bytes) -> None:
        op = b0 & 0x0F
        if op == OP_TEXT and b0 & 0x80:
            self.on_text(payload)
        elif op == OP_TEXT:
            self.frag = bytearray(payload)
        elif op == OP_CONT and self.frag is not None:
            self.frag += payload
            if b0 & 0x80:
                message, self.frag = bytes(self.frag), None
                self.on_text(message)
        elif op == OP_PING:
            self.write(client_frame(payload, OP_PONG))
        elif op == OP_CLOSE:
            if not self.closing:  # the server's: echo its code, then close
                self.write(client_frame(payload[:2], OP_CLOSE))
            self._end()
            if self.transport is not None:
                self.transport.close()
        elif op != OP_PONG:  # binary (or a stray continuation): not what this client expects
            self._end()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(exc or ConnectionError("closed during the upgrade"))
        self._end()

    def _end(self) -> None:
        if not self.ended:
            self.ended = True
            self.on_end()

    def _queue(self, payload: bytes) -> None:
        self.inbox.append(payload)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _queue_end(self) -> None:
        self._queue(None)  # type: ignore[arg-type]

    async def receive(self, wait_s: float | None = None) -> bytes | None:
        """The next text message; None once the socket has ended (or sent binary)."""
        if not self.inbox:
            if self.ended:
                return None
            loop = asyncio.get_running_loop()
            self.waiter = waiter = loop.create_future()
            timer = None
            if wait_s is not None:
                timer = loop.call_later(
                    wait_s, lambda: waiter.done() or waiter.set_exception(TimeoutError())
                )
            try:
                await waiter
            finally:
                self.waiter = None
                if timer is not None:
                    timer.cancel()
        return self.inbox.popleft()

    async def close(self, within: float = 2.0) -> None:
        """Our close frame (1000), then the connection once the server has answered."""
        if self.transport is None:
            return
        if not self.ended:
            self.closing = True
            self.write(client_frame(struct.pack("!H", 1000), OP_CLOSE))
            deadline = time.monotonic() + within
            while not self.ended and time.monotonic() < deadline:
                try:
                    await self.receive(deadline - time.monotonic())
                except TimeoutError:
                    break
        self.transport.close()


async def open_socket(host: str, port: int, room: int) -> tuple[WsClient, int]:
    """A socket joined to ``room`` (its own connection) and its clock offset (ms) from the
    ``welcome``."""
    token = issue_token(DEV_SECRET, "viewer", anonymous_subject(), 3600)
    loop = asyncio.get_running_loop()
    for _attempt in range(20):
        key = base64.b64encode(os.urandom(16)).decode()
        ws: WsClient | None = None
        try:
            _, ws = await loop.create_connection(lambda k=key: WsClient(k), host, port)
            ws.write(
                f"GET /ws?room={room}&token={token} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            async with asyncio.timeout(30):
                await ws.upgraded
                data = await ws.receive()
            welcome = orjson.loads(data) if data is not None else {}
            return ws, int(welcome["server_time"] - time.time() * 1000)
        except (OSError, TimeoutError, KeyError, TypeError, orjson.JSONDecodeError):
            if ws is not None and ws.transport is not None:
                ws.transport.abort()
            await asyncio.sleep(0.5)
    raise SystemExit("a loader socket could not join")


@dataclass(slots=True)
class HttpPlan:
    """One HTTP viewer's batches: request head + body up to ``sent_at``'s value, the rest of
    the body, the event ids."""

    pre: list[bytes]
    post: list[bytes]
    ids: list[list[str]]


def http_plan(events: list[dict[str, Any]], batch: int, host: str, port: int) -> HttpPlan:
    token = issue_token(DEV_SECRET, "viewer", anonymous_subject(), 3600)
    digits = len(b"%d" % int(time.time() * 1000))  # 13 until the year 2286
    plan = HttpPlan([], [], [])
    for i in range(0, len(events), batch):
        chunk = events[i : i + batch]
        post = b',"events":%b}' % orjson.dumps(chunk)
        length = len(b'{"sent_at":') + digits + len(post)
        plan.pre.append(
            b"POST /api/events HTTP/1.1\r\nHost: %b:%d\r\nAuthorization: Bearer %b\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            b'{"sent_at":' % (host.encode(), port, token.encode(), length)
        )
        plan.post.append(post)
        plan.ids.append([e["id"] for e in chunk])
    return plan


async def http_viewer(pool: HttpPool, plan: HttpPlan, t: Tally) -> None:
    for pre, post, ids in zip(plan.pre, plan.post, plan.ids, strict=True):
        t.sent += len(ids)
        for _attempt in range(50):
            started = time.time()
            try:
                status, retry_after, raw = await pool.request(pre, post)
            except (OSError, TimeoutError):
                await asyncio.sleep(0.5)
                continue
            if status == 503:
                t.retries_503 += 1
                await asyncio.sleep(retry_after)
                continue
            body = orjson.loads(raw)
            assert status == 200, body
            t.account(ids, body, started)
            break
        else:
            t.failed_batches += 1


@dataclass(slots=True)
class SocketPlan:
    """One socket viewer's ``track`` frames (encoded and masked), their refs and event ids."""

    frames: list[bytes]
    refs: list[str]
    ids: list[list[str]]


def socket_plan(events: list[dict[str, Any]], frame_events: int, offset: int) -> SocketPlan:
    plan = SocketPlan([], [], [])
    for n, i in enumerate(range(0, len(events), frame_events)):
        chunk = events[i : i + frame_events]
        plan.frames.append(client_frame(
            b'{"type":"track","ref":"r%d","offset_ms":%d,"events":%b}'
            % (n, offset, orjson.dumps(chunk))
        ))  # fmt: skip
        plan.refs.append(f"r{n}")
        plan.ids.append([e["id"] for e in chunk])
    return plan


class WaitingSocket:
    """``--socket-mode waiting`` as callbacks on the socket: each ``track`` frame sent after
    the previous one's answer and at most one per 0.1 s (``rooms.messages_per_second`` 10/s); an
    ``error`` answer (unavailable, rate_limited) is resent the same after 0.5 s; the socket
    ending is one failed batch. ``done`` is set at the end."""

    def __init__(self, ws: WsClient, plan: SocketPlan, t: Tally) -> None:
        self.ws, self.plan, self.t = ws, plan, t
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.n = 0
        self.started = 0.0
        self.outstanding = False
        self.timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        ws = self.ws
        ended = ws.ended or None in ws.inbox  # before the burst: nothing of ours
        ws.inbox.clear()
        ws.on_text, ws.on_end = self.on_text, self.on_end
        if not self.plan.frames:
            self.done.set_result(None)
            return
        self.t.sent += len(self.plan.ids[0])
        if ended:
            self.on_end()
        else:
            self.send()

    def send(self) -> None:
        self.timer = None
        self.started = time.time()
        self.outstanding = True
        self.ws.write(self.plan.frames[self.n])

    def on_text(self, payload: bytes) -> None:
        if not self.outstanding:
            return
        reply = orjson.loads(payload)
        if reply.get("ref") != self.plan.refs[self.n] and reply.get("code") != "rate_limited":
            return
        self.outstanding = False
        t = self.t
        if reply.get("type") != "tracked":
            t.retries_503 += 1  # unavailable (buffer full) or rate limited: back off, resend
            self.timer = self.loop.call_later(0.5, self.send)
            return
        t.account(self.plan.ids[self.n], reply, self.started)
        self.n += 1
        if self.n == len(self.plan.frames):
            self.done.set_result(None)
            return
        t.sent += len(self.plan.ids[self.n])
        delay = self.started + 0.1 - time.time()
        if delay > 0:
            self.timer = self.loop.call_later(delay, self.send)
        else:
            self.send()

    def on_end(self) -> None:
        if self.done.done():
            return
        if self.timer is not None:
            self.timer.cancel()
        self.t.failed_batches += 1
        self.done.set_result(None)


class PipelinedSocket:
    """``--socket-mode pipelined`` as callbacks on the socket, as the client library does: a
    frame whenever events are ready (here: one per 0.1 s, within ``rooms.messages_per_second``)
    without waiting for the previous answer; each unanswered frame is kept and sent again (same
    event ids) if its answer is an error (after 0.5 s) or does not come (30 s without a
    message: every unanswered frame again); the socket ending fails every unanswered frame."""

    def __init__(self, ws: WsClient, plan: SocketPlan, t: Tally) -> None:
        self.ws, self.plan, self.t = ws, plan, t
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.number = {ref: n for n, ref in enumerate(plan.refs)}
        self.pending = set(range(len(plan.frames)))
        self.queue = collections.deque(range(len(plan.frames)))  # frames to send, in order
        self.sent_at = [0.0] * len(plan.frames)
        self.last = 0.0  # the last frame's send time
        self.heard = 0.0  # the last message's receive time
        self.pump_timer: asyncio.TimerHandle | None = None
        self.quiet_timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        ws = self.ws
        ended = ws.ended or None in ws.inbox  # before the burst: nothing of ours
        ws.inbox.clear()
        ws.on_text, ws.on_end = self.on_text, self.on_end
        self.t.sent += sum(len(ids) for ids in self.plan.ids)
        if not self.pending:
            self.done.set_result(None)
        elif ended:
            self.on_end()
        else:
            self.heard = time.time()
            self.quiet_timer = self.loop.call_later(30, self.quiet)
            self.pump()

    def pump(self) -> None:
        """Send what is queued, one frame per 0.1 s."""
        self.pump_timer = None
        while self.queue:
            now = time.time()
            wait = self.last + 0.1 - now
            if wait > 0:
                self.pump_timer = self.loop.call_later(wait, self.pump)
                return
            n = self.queue.popleft()
            self.sent_at[n] = self.last = now
            self.ws.write(self.plan.frames[n])

    def again(self, numbers: list[int]) -> None:
        if self.done.done():
            return
        self.queue.extend(n for n in numbers if n in self.pending and n not in self.queue)
        if self.pump_timer is None:
            self.pump()

    def quiet(self) -> None:
        """30 s after the last message: an answer that never came (a dropped frame)."""
        idle = time.time() - self.heard
        if idle >= 30:
            self.t.retries_503 += len(self.pending)
            self.again(sorted(self.pending))
            self.heard, idle = time.time(), 0.0
        self.quiet_timer = self.loop.call_later(30 - idle, self.quiet)

    def on_text(self, payload: bytes) -> None:
        self.heard = time.time()
        reply = orjson.loads(payload)
        n = self.number.get(reply.get("ref"))  # type: ignore[arg-type]
        if n is None or n not in self.pending:
            return
        kind = reply.get("type")
        if kind == "tracked":
            self.pending.discard(n)
            self.t.account(self.plan.ids[n], reply, self.sent_at[n])
            if not self.pending:
                self.finish()
        elif kind == "error":
            self.t.retries_503 += 1  # unavailable (buffer full): back off, send it again
            self.loop.call_later(0.5, self.again, [n])

    def on_end(self) -> None:
        if not self.done.done():
            self.t.failed_batches += len(self.pending)
            self.finish()

    def finish(self) -> None:
        for timer in (self.pump_timer, self.quiet_timer):
            if timer is not None:
                timer.cancel()
        self.done.set_result(None)


async def load(job: dict[str, Any], ready: Any, go: Any) -> dict[str, Any]:
    """One loader process: its viewers' events made and encoded, its sockets joined and their
    frames built, then (``ready``) it waits for the start time on ``go`` (the same for every
    loader), then the burst."""
    rng = random.Random(job["seed"])
    make_id = uuid7 if job["ids"] == "v7" else uuid4
    plans = [make_events(job["per_viewer"], job["room"], 0.01, 0.01, rng, make_id)
             for _ in range(job["http"] + job["sockets"])]  # fmt: skip
    t = Tally()
    parts = urlsplit(job["url"])
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    gate = asyncio.Semaphore(50)

    async def joined() -> tuple[WsClient, int]:
        async with gate:
            return await open_socket(host, port, job["room"])

    # Sockets on connections of their own: an upgrade on a keep-alive connection that carried
    # HTTP first is refused by the lean path (503, docs/protocol.md).
    sockets = await asyncio.gather(*(joined() for _ in range(job["sockets"])))
    http = [http_plan(plans[i], job["batch"], host, port) for i in range(job["http"])]
    socks = [socket_plan(plans[job["http"] + i], job["frame_events"], off)
             for i, (_, off) in enumerate(sockets)]  # fmt: skip
    pool = HttpPool(host, port, job["connections"])
    ready.put(job["index"])
    start_at = await asyncio.to_thread(go.get)  # the parent's start time (wall clock)
    gc.collect()
    gc.freeze()  # the plans and events: never scanned again
    gc.disable()
    await asyncio.sleep(max(0.0, start_at - time.time()))
    cpu = time.process_time()
    mode = WaitingSocket if job["waiting"] else PipelinedSocket
    viewers = [mode(ws, plan, t) for (ws, _), plan in zip(sockets, socks, strict=True)]
    for viewer in viewers:
        viewer.start()
    tasks = [viewer.done for viewer in viewers]
    await asyncio.gather(*(http_viewer(pool, plan, t) for plan in http), *tasks)
    cpu = time.process_time() - cpu
    gc.enable()
    pool.close()
    await asyncio.gather(*(ws.close() for ws, _ in sockets))
    return {
        "cpu": cpu,
        "acked": t.acked, "sent": t.sent, "duplicates": t.duplicates, "rejected": t.rejected,
        "retries_503": t.retries_503, "failed_batches": t.failed_batches, "ack_ms": t.ack_ms,
        "last_ack": t.last_ack,
    }  # fmt: skip


def load_process(job: dict[str, Any], ready: Any, go: Any, out: Any) -> None:
    out.put(run_loop(load(job, ready, go)))
