"""The WebSocket wire protocol: close codes, frame types, and pre-encoded WebSocket frames.

docs/protocol.md is the reference for clients; this module is the one place the server keeps it.
"""

from __future__ import annotations

import struct
from typing import Any

import orjson

# Close codes (RFC 6455 ones where they fit, 4xxx for ours: 4000 + the HTTP status it echoes).
CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED_DATA = 1003  # a binary frame
CLOSE_MESSAGE_TOO_BIG = 1009  # a frame over rooms.max_frame_bytes
CLOSE_RECONNECT = 1012  # node shutting down: reconnect (to another node) and resume
CLOSE_BAD_REQUEST = 4400  # missing/invalid room or last_seq in the URL
CLOSE_UNAUTHORIZED = 4401  # missing, bad or expired token, or not a viewer's (wrong_role)
CLOSE_ROOM_NOT_FOUND = 4404
CLOSE_TOO_SLOW = 4408  # send buffer overflow: reconnect and resume
CLOSE_ROOM_ENDED = 4410
CLOSE_TOO_MANY_CONNECTIONS = 4429

# Who joins a room: viewers — a signed-in user, an anonymous viewer, or a host (the console's
# socket; a host of another room joins as a plain viewer). Any other kind of token (a
# customer-service agent's) is refused like a bad one: `error` `wrong_role`, then 4401.
VIEWER_KINDS = frozenset({"user", "viewer", "host"})

# Viewer -> server message types; anything else gets an `error` frame with code unknown_type.
CLIENT_TYPES = frozenset({"like", "comment", "ping", "resume", "track"})

# What a viewer's message is answered with: a frame (sent encoded), or nothing.
Reply = dict[str, Any] | None


def encode(obj: Any) -> bytes:
    return orjson.dumps(obj)


def ws_text_frame(payload: bytes) -> bytes:
    """A complete, unmasked, final server-to-client text frame carrying ``payload``.

    Built once per room message and written as-is to every local viewer's transport.
    """
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x81, n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x81, 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 127, n)
    return header + payload


def error_frame(code: str, message: str) -> bytes:
    return encode({"type": "error", "code": code, "message": message})


def error_reply(code: str, message: str, ref: Any = None) -> dict[str, Any]:
    """An ``error`` frame; ``ref``: the client's ref of the comment or ``track`` frame it is
    about (echoed)."""
    if ref is not None:
        return {"type": "error", "code": code, "message": message, "ref": ref}
    return {"type": "error", "code": code, "message": message}
