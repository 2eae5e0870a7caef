"""Recognise a WebSocket upgrade to ``/ws`` from the raw request head (lean viewer path).

Only a *clean, valid* upgrade is taken: ``GET /ws?... HTTP/1.1`` with ``Upgrade: websocket``, an
``upgrade`` token in ``Connection``, a supported ``Sec-WebSocket-Version`` and a key of 16 bytes
(the checks aiohttp's ``WebSocketResponse`` makes), exactly one Host, no body, no folded,
malformed or over-long header line and no control characters in a value.
Anything else is handed to aiohttp untouched, which answers exactly as it always has (a plain
``GET /ws`` gets the 400 ``websocket_expected`` JSON error, a bad head 400/431).

:class:`WsQuery` is the query string's one description: the OpenAPI document's ``/ws``
parameters and the join's parsing (``Endpoint``) both come from it.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl, unquote

import msgspec
from msgspec import Meta

PATH = "/ws"
VERSIONS = ("13", "8", "7")  # as aiohttp: 8 and 7 are the hybi drafts with the same framing
MAX_HEADERS = 128  # aiohttp's default limit
MAX_LINE = 8190  # aiohttp's default max_line_size / max_field_size
# Bytes a header value may not hold (RFC 9110 field-value: no CTLs but tab): a bare LF or CR
# inside a value could be a line break to a proxy in front.
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Ids in the URL are ASCII digits (not "1e3", "+1" or "²"): 18 of them at most. The lookahead
# keeps Python's ``$`` from accepting a trailing newline ("12%0A").
_DIGITS = r"^[0-9]{1,18}(?!\n)$"


class WsQuery(msgspec.Struct, kw_only=True):
    """The query of ``GET /ws``; other parameters (cache busters) are ignored, empty = absent.

    A defect closes the socket with 4400 ``bad_request`` right after the 101. (Not a
    ``contract.Query``: that module imports the app keys, which import the endpoint.)
    """

    room: Annotated[str, Meta(pattern=_DIGITS, description="The room id")]
    token: Annotated[
        str | None,
        Meta(description="Any token kind (viewer, user, host); or `Authorization: Bearer`"),
    ] = None
    last_seq: (
        Annotated[str, Meta(pattern=_DIGITS, description="Resume after this seq (see resume)")]
        | None
    ) = None
    epoch: Annotated[str, Meta(max_length=32, description="The epoch of that last_seq")] | None = (
        None
    )

    @property
    def room_id(self) -> int:
        return int(self.room)

    @property
    def last_seq_number(self) -> int | None:
        return None if self.last_seq is None else int(self.last_seq)


def ws_query(params: dict[str, str]) -> WsQuery:
    """``params`` (an :class:`Upgrade`'s query) as :class:`WsQuery`, like
    ``contract.decode_query``: text converted to the field types, empty values absent.

    Raises:
        msgspec.ValidationError: a parameter that breaks the model (the message names it).
    """
    return msgspec.convert({k: v for k, v in params.items() if v}, WsQuery, strict=False)


@dataclass(frozen=True, slots=True)
class Upgrade:
    """What the lean path needs from the request head."""

    query: dict[str, str]  # first value of each parameter, like ``request.query.get``
    authorization: str
    key: str


def request_target(line: bytes) -> str | None:
    """The target of ``GET <target> HTTP/1.1`` if the request line is that form, else None."""
    parts = line.split(b" ")
    if len(parts) != 3 or parts[0] != b"GET" or parts[2] != b"HTTP/1.1":
        return None
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        return None


def targets_ws(target: str) -> bool:
    """True when the origin-form target's path is ``/ws`` (percent-decoded, as aiohttp routes)."""
    return target.startswith("/") and unquote(target.partition("?")[0]) == PATH


def parse_upgrade(head: bytes) -> Upgrade | None:
    """The upgrade in ``head`` (request line + headers, without the final CRLF CRLF), or None
    when aiohttp should answer this request."""
    lines = head.split(b"\r\n")
    target = request_target(lines[0])
    if target is None or not targets_ws(target) or len(lines) - 1 > MAX_HEADERS:
        return None
    headers: dict[str, str] = {}
    connection: list[str] = []
    hosts = 0
    for raw in lines[1:]:
        name_b, colon, value_b = raw.partition(b":")
        if not colon or len(raw) > MAX_LINE or _BAD_VALUE.search(value_b):
            return None
        try:
            name = name_b.decode("ascii")
        except UnicodeDecodeError:
            return None
        if not _TOKEN.match(name):
            return None  # also rejects obs-fold lines and whitespace before the colon
        name = name.lower()
        value = value_b.decode("utf-8", "surrogateescape").strip(" \t")
        if name == "connection":
            connection.extend(t.strip().lower() for t in value.split(","))
        elif name == "host":
            hosts += 1
        headers.setdefault(name, value)
    if "content-length" in headers or "transfer-encoding" in headers or hosts != 1:
        return None
    if headers.get("upgrade", "").lower() != "websocket" or "upgrade" not in connection:
        return None
    if headers.get("sec-websocket-version", "") not in VERSIONS:
        return None
    key = headers.get("sec-websocket-key", "")
    try:
        if not key or len(base64.b64decode(key)) != 16:
            return None
    except (binascii.Error, ValueError):
        return None
    query = target.partition("?")[2]
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        params.setdefault(name, value)
    return Upgrade(query=params, authorization=headers.get("authorization", ""), key=key)


def switching_protocols(accept: str) -> bytes:
    """The 101 response: no subprotocol, no extension (no compression) is ever negotiated."""
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
    ).encode()
