"""A byte-level WebSocket client for protocol tests: it sends exactly the bytes a test asks for
(unmasked frames, bad opcodes, split heads) and reads the server's frames one by one."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct

import orjson

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KEY = base64.b64encode(b"0123456789abcdef").decode()


def upgrade_head(path: str, *, headers: dict[str, str] | None = None, key: str = KEY) -> bytes:
    fields = {
        "Host": "test",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
    }
    fields.update(headers or {})
    lines = [f"GET {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in fields.items() if v is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = True, rsv: int = 0
) -> bytes:
    """One client frame; masked unless told otherwise."""
    b0 = (0x80 if fin else 0) | rsv << 4 | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        head = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def text(obj: object) -> bytes:
    return frame(0x1, orjson.dumps(obj))


class RawWS:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, base_url: str) -> RawWS:
        host, port = base_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response_head(self) -> tuple[int, dict[str, str]]:
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 15)
        lines = raw.decode().split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return status, headers

    async def http_body(self, headers: dict[str, str]) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(int(headers["content-length"])), 15)

    async def handshake(self, path: str, **kw: object) -> dict[str, str]:
        await self.send(upgrade_head(path, **kw))  # type: ignore[arg-type]
        status, headers = await self.response_head()
        assert status == 101, (status, headers)
        return headers

    async def recv_frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next server frame; the server never fragments or masks."""
        head = await asyncio.wait_for(self.reader.readexactly(2), 15)
        assert head[0] & 0x80, head  # final
        assert not head[1] & 0x80, head  # unmasked
        n = head[1] & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return head[0] & 0x0F, await asyncio.wait_for(self.reader.readexactly(n), 15)

    async def recv_json(self) -> dict[str, object]:
        """The next text frame, decoded (control frames are skipped)."""
        while True:
            opcode, payload = await self.recv_frame()
            if opcode == 0x1:
                result: dict[str, object] = orjson.loads(payload)
                return result
            assert opcode in (0x9, 0xA), (opcode, payload)

    async def close_code(self) -> int | None:
        """Read until the server's close frame; its code (None: closed without one)."""
        try:
            while True:
                opcode, payload = await self.recv_frame()
                if opcode == 0x8:
                    return struct.unpack("!H", payload[:2])[0] if payload else None
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    async def at_eof(self) -> bool:
        """True once the server has closed the TCP connection (after any data left)."""
        try:
            rest = await asyncio.wait_for(self.reader.read(), 15)
        except ConnectionError:
            return True
        return rest == b"" or self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


def accept_for(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
