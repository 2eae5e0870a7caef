"""One viewer WebSocket on the lean path: an ``asyncio.Protocol`` that *is* the hub's viewer.

After the 101 there is no task and no aiohttp object per viewer: client frames are parsed in
``data_received`` and each text message is handed to the endpoint synchronously. A task exists
only while something must be awaited (the join, a comment publish, a resume); meanwhile
incoming bytes are held (reading pauses past ``HOLD_BYTES``) and parsed when it ends, so a
connection's messages are still handled one after another, in order.

States: ``JOINING`` (upgrade answered, welcome not yet written) → ``OPEN`` → ``CLOSING`` (our
close frame sent; waiting for the peer's, aborted after a bound) or ``DRAINING`` (the peer broke
the protocol: close frame and FIN sent, input discarded) → ``CLOSED`` (transport gone).

Heartbeat: no timer per viewer. One node-level sweep (:meth:`Sockets.sweep`) every
``rooms.heartbeat_seconds`` pings the connections that sent nothing since the previous sweep and
aborts those that stayed silent for the sweep after the ping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from livecommerce.aio import check_cancelled, wait_event
from livecommerce.realtime import frames as f
from livecommerce.realtime.protocol import (
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_UNSUPPORTED_DATA,
    error_frame,
    ws_text_frame,
)

if TYPE_CHECKING:
    from livecommerce.realtime.endpoint import Endpoint
    from livecommerce.realtime.variants import Bucketing

log = logging.getLogger("livecommerce.conn")

JOINING, OPEN, CLOSING, DRAINING, CLOSED = range(5)
HOLD_BYTES = 65536  # input held while a task runs before reading pauses
CLOSE_TIMEOUT_SECONDS = 2.0  # how long a closing peer may take to answer our close frame


class Conn(asyncio.Protocol):
    """One viewer connection in one room (``room_id`` 0 until it has begun to join)."""

    __slots__ = (
        "ab",
        "buf",
        "ep",
        "first",
        "frag",
        "identity",
        "ip",
        "last_comment",
        "quiet",
        "room_id",
        "since",
        "stamp",
        "state",
        "task",
        "tokens",
        "transport",
    )

    def __init__(self, ep: Endpoint, transport: asyncio.Transport, ip: str) -> None:
        self.ep = ep
        self.transport = transport
        self.ip = ip
        self.identity = ""  # "kind:subject", set once admitted (counted against the limits)
        self.room_id = 0
        self.since: int | None = None  # snapshot seq, set when welcome has been written
        self.state = JOINING
        self.buf: bytes | bytearray = b""  # input not parsed yet
        self.frag: bytearray | None = None  # a fragmented text message being assembled
        self.task: asyncio.Task[None] | None = None
        self.tokens = ep.burst  # token bucket for viewer messages
        self.stamp = time.monotonic()
        self.last_comment = 0.0
        # No message handled and no live frame written past the welcome's seq yet (``resume`` is
        # only valid then); the hub clears it for a frame written while catching up (hub.py).
        self.first = True
        self.quiet = 0  # heartbeat sweeps since the last byte received
        self.ab: Bucketing | None = None  # a user's experiment bucketing (realtime/variants.py)

    # ------------------------------------------------------------------ output

    def write(self, frame: bytes) -> None:
        """Write a pre-built frame (the hub's fan-out writes to ``transport`` directly)."""
        self.transport.write(frame)

    def send(self, payload: bytes) -> None:
        """A per-connection text frame (reply, error); evicts the viewer past the buffer limit."""
        if self.state != OPEN or self.transport.is_closing():
            return
        self.transport.write(ws_text_frame(payload))
        if self.transport.get_write_buffer_size() > self.ep.hub.send_buffer_max:
            self.ep.evict_slow(self)

    def close(self, code: int, reason: str, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Start the closing handshake: our close frame now, the transport when the peer
        answers or after ``timeout``. The viewer stops receiving room frames at once."""
        if self.state >= CLOSING:
            return
        self.state = CLOSING
        self.ep.detach(self)
        if not self.transport.is_closing():
            self.transport.write(f.close_frame(code, reason))
        # Bounded even when the transport is already closing: a peer that never reads would
        # keep unsent output (and the socket) alive forever.
        asyncio.get_running_loop().call_later(timeout, self._linger_expired)

    def refuse(self, close_code: int, code: str, message: str) -> None:
        """An ``error`` frame, then close with ``close_code`` (handshake refusals, 1003)."""
        if self.state < CLOSING and not self.transport.is_closing():
            self.transport.write(ws_text_frame(error_frame(code, message)))
        self.close(close_code, message)

    def fail(self, code: int, reason: str) -> None:
        """The peer broke the protocol: close frame, FIN, and discard whatever it still sends
        (closing with unread input would reset the connection before it reads our close)."""
        if self.state >= DRAINING:
            return
        self.state = DRAINING
        self.buf, self.frag = b"", None
        self.ep.detach(self)
        if not self.transport.is_closing():
            self.transport.write(f.close_frame(code, reason))
            if self.transport.can_write_eof():
                self.transport.write_eof()
        asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_SECONDS, self._linger_expired)

    def _linger_expired(self) -> None:
        if self.state != CLOSED:
            self.transport.abort()

    # ------------------------------------------------------------------ tasks

    def run(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as this connection's one task; input is held until it ends."""
        self.task = asyncio.get_running_loop().create_task(self._run(coro))

    async def _run(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except Exception:
            log.exception("viewer connection task failed")
            self.close(f.CLOSE_INTERNAL_ERROR, "internal error")
        finally:
            self.task = None
        if self.state in (OPEN, CLOSING):
            # CLOSING too: the task may have refused the join while reading was paused, and the
            # peer's close reply is in (or behind) the held input.
            self._consume()
            t = self.transport
            idle = self.state in (OPEN, CLOSING) and self.task is None
            if idle and not t.is_closing() and not t.is_reading():
                t.resume_reading()

    # ------------------------------------------------------------------ asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        self.quiet = 0
        state = self.state
        if state >= DRAINING:
            return
        self.buf = f.append_bytes(self.buf, data)
        if state == JOINING or (state == OPEN and self.task is not None):
            if len(self.buf) > HOLD_BYTES:
                self.transport.pause_reading()
            return
        self._consume()

    def eof_received(self) -> bool | None:
        # The transport closes once its output is written; a peer that half-closed and stopped
        # reading never lets it drain, so unsent output means abort now.
        if self.transport.get_write_buffer_size():
            self.transport.abort()
        return None  # connection_lost cleans up

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = CLOSED
        self.buf, self.frag = b"", None
        if self.task is not None:
            self.task.cancel()  # a join or a reply nobody will read; its cleanup is idempotent
        self.ep.forget(self)

    # ------------------------------------------------------------------ input

    def _consume(self) -> None:
        """Parse and act on every complete frame held in ``buf``."""
        buf, pos = self.buf, 0
        limit = self.ep.max_frame
        try:
            while self.state == CLOSING or (self.state == OPEN and self.task is None):
                frame = f.parse_frame(buf, pos, limit)
                if frame is None:
                    break
                fin, opcode, payload, pos = frame
                self._frame(fin, opcode, payload)
        except f.FrameError as exc:
            if self.state == CLOSING:
                self.transport.abort()  # it broke the protocol while we were closing
            else:
                self.fail(exc.code, exc.reason)
            return
        if self.state < DRAINING:
            self.buf = buf[pos:] if pos else buf

    def _frame(self, fin: bool, opcode: int, payload: bytes) -> None:
        if self.state == CLOSING:
            if opcode == f.OP_CLOSE:
                self.transport.close()  # the peer answered our close: the handshake is done
            return
        if opcode == f.OP_TEXT:
            if self.frag is not None:
                raise f.FrameError(f.CLOSE_PROTOCOL_ERROR, "expected a continuation frame")
            if fin:
                self._message(payload)
            else:
                self.frag = bytearray(payload)
        elif opcode == f.OP_CONT:
            if self.frag is None:
                raise f.FrameError(f.CLOSE_PROTOCOL_ERROR, "unexpected continuation frame")
            if len(self.frag) + len(payload) > self.ep.max_frame:
                raise f.FrameError(CLOSE_MESSAGE_TOO_BIG, "message too big")
            self.frag += payload
            if fin:
                message, self.frag = bytes(self.frag), None
                self._message(message)
        elif opcode == f.OP_BINARY:
            if self.frag is not None:
                raise f.FrameError(f.CLOSE_PROTOCOL_ERROR, "expected a continuation frame")
            self.refuse(CLOSE_UNSUPPORTED_DATA, "binary_not_supported", "send JSON text frames")
        elif opcode == f.OP_CLOSE:
            code = f.close_reply_code(payload)
            self.state = CLOSING
            self.ep.detach(self)
            self.transport.write(f.close_frame(code))
            self.transport.close()
            # close() waits for unsent output to drain; a peer that never reads would keep the
            # socket (past its admission slot) forever.
            asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_SECONDS, self._linger_expired)
        elif opcode == f.OP_PING:
            if not self.take_token():
                return  # a ping flood: over the message rate, pings get no pong
            self.transport.write(f.control_frame(f.OP_PONG, payload))
            if self.transport.get_write_buffer_size() > self.ep.hub.send_buffer_max:
                self.ep.evict_slow(self)  # pings sent faster than their pongs are read
        # OP_PONG: receiving it already reset ``quiet``.

    def _message(self, data: bytes) -> None:
        try:
            text = data.decode()
        except UnicodeDecodeError:
            raise f.FrameError(f.CLOSE_INVALID_TEXT, "text frames must be UTF-8") from None
        self.ep.on_text(self, text)

    def take_token(self) -> bool:
        """Token bucket: ``rooms.messages_per_second``, burst twice that."""
        now = time.monotonic()
        ep = self.ep
        self.tokens = min(ep.burst, self.tokens + (now - self.stamp) * ep.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Sockets:
    """Every open viewer socket of this node, from the 101 until the transport is gone."""

    def __init__(self) -> None:
        self.conns: set[Conn] = set()
        self._drained: asyncio.Event | None = None  # set when the last one goes (shutdown)

    def __len__(self) -> int:
        return len(self.conns)

    def add(self, conn: Conn) -> None:
        self.conns.add(conn)

    def discard(self, conn: Conn) -> None:
        self.conns.discard(conn)
        if not self.conns and self._drained is not None:
            self._drained.set()

    def sweep(self) -> None:
        """One heartbeat round: ping the quiet, abort the silent (see the module docstring)."""
        for conn in list(self.conns):
            if conn.state != OPEN:
                continue
            if conn.quiet == 0:
                conn.quiet = 1
            elif conn.quiet == 1:
                conn.quiet = 2
                conn.transport.write(f.PING)
            else:
                conn.transport.abort()

    async def run_heartbeat(self, every: float) -> None:
        while True:
            check_cancelled()
            await asyncio.sleep(every)
            self.sweep()

    async def close_all(self, code: int, reason: str, within: float) -> None:
        """Close every socket with ``code`` (shutdown: 1012) and wait, at most ``within``
        seconds, for the closing handshakes; whatever is left is aborted."""
        conns = list(self.conns)
        if not conns:
            return
        log.info("closing %d websockets with code %d", len(conns), code)
        self._drained = asyncio.Event()
        for conn in conns:
            if conn.state == JOINING and conn.task is not None:
                conn.task.cancel()
            conn.close(code, reason, timeout=within)
        await wait_event(self._drained, within)
        for conn in list(self.conns):
            conn.transport.abort()
