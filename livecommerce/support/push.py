"""WeChat's message-push bodies (XML or JSON, plaintext or encrypted) as :class:`Incoming`.

Both formats carry the same field names (``ToUserName``, ``FromUserName``, ``CreateTime``,
``MsgType``, ...). In safe mode the envelope holds ``ToUserName`` and ``Encrypt``; the decrypted
message is in the same format as the envelope. In compatible mode the envelope holds both: only
the encrypted (signed) copy is trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from xml.etree.ElementTree import ParseError

import orjson
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

Format = Literal["xml", "json"]
# The types we act on; others are stored and acknowledged but get no answer.
KNOWN_TYPES = ("text", "image", "miniprogrampage", "event")
MAX_FIELD_CHARS = 4096
# An openid is 28 characters; it is part of the UNIQUE dedup key of events (a btree entry).
MAX_OPENID_CHARS = 128
# CreateTime is seconds since the epoch; PostgreSQL's timestamps end in the year 294276.
MAX_CREATE_TIME = 10**11


class PushFormatError(Exception):
    """A body that is neither a WeChat XML nor a JSON message."""


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message or event from a buyer (``from_user`` is their openid)."""

    to_user: str
    from_user: str
    create_time: int
    msg_type: str
    content: str = ""
    msg_id: int | None = None
    pic_url: str = ""
    media_id: str = ""
    title: str = ""
    app_id: str = ""
    page_path: str = ""
    thumb_url: str = ""
    event: str = ""
    session_from: str = ""

    @property
    def dedup_key(self) -> str:
        """``m:<MsgId>`` for messages; ``e:<FromUserName>:<CreateTime>`` for events (no MsgId)."""
        if self.msg_id is not None:
            return f"m:{self.msg_id}"
        return f"e:{self.from_user}:{self.create_time}"

    def as_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


def detect(raw: bytes) -> Format:
    """``xml`` or ``json`` from the first non-blank byte (WeChat's content types vary)."""
    head = raw.lstrip()[:1]
    if head == b"<":
        return "xml"
    if head == b"{":
        return "json"
    raise PushFormatError("body is neither XML nor JSON")


def fields(raw: bytes, fmt: Format) -> dict[str, str]:
    """The top-level fields of a push body as text (numbers included).

    Raises:
        PushFormatError: malformed XML/JSON, an XML bomb, or not an object.
    """
    if fmt == "xml":
        try:
            root = fromstring(raw, forbid_dtd=True)
        except (ParseError, DefusedXmlException, ValueError) as exc:
            raise PushFormatError(f"bad XML ({type(exc).__name__})") from None
        return {child.tag: (child.text or "").strip() for child in root}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise PushFormatError("bad JSON") from None
    if not isinstance(data, dict):
        raise PushFormatError("JSON body is not an object")
    return {
        str(k): v if isinstance(v, str) else orjson.dumps(v).decode()
        for k, v in data.items()
        if v is not None
    }


def parse(values: dict[str, str]) -> Incoming:
    """An :class:`Incoming` from a decrypted message's fields.

    Raises:
        PushFormatError: a required field (FromUserName, CreateTime, MsgType) missing or bad.
    """

    def text(name: str) -> str:
        return values.get(name, "")[:MAX_FIELD_CHARS].replace("\x00", "")

    sender, msg_type = text("FromUserName"), text("MsgType")
    if not sender or not msg_type:
        raise PushFormatError("FromUserName and MsgType are required")
    if len(sender) > MAX_OPENID_CHARS:
        raise PushFormatError(f"FromUserName is longer than {MAX_OPENID_CHARS} characters")
    try:
        create_time = int(values.get("CreateTime", ""))
        msg_id = int(values["MsgId"]) if values.get("MsgId") else None
    except ValueError:
        raise PushFormatError("CreateTime and MsgId must be integers") from None
    if not 0 <= create_time < MAX_CREATE_TIME or (msg_id is not None and not 0 <= msg_id < 2**64):
        raise PushFormatError("CreateTime or MsgId out of range")
    if msg_type != "event" and msg_id is None:
        raise PushFormatError("MsgId is required for messages")
    return Incoming(
        to_user=text("ToUserName"),
        from_user=sender,
        create_time=create_time,
        msg_type=msg_type,
        content=text("Content"),
        msg_id=msg_id,
        pic_url=text("PicUrl"),
        media_id=text("MediaId"),
        title=text("Title"),
        app_id=text("AppId"),
        page_path=text("PagePath"),
        thumb_url=text("ThumbUrl"),
        event=text("Event"),
        session_from=text("SessionFrom"),
    )


def to_xml(values: dict[str, str | int]) -> bytes:
    """A WeChat-style XML body (CDATA for text, bare numbers), for the fake and tests."""
    parts = ["<xml>"]
    for k, v in values.items():
        if isinstance(v, int):
            parts.append(f"<{k}>{v}</{k}>")
        else:
            parts.append(f"<{k}><![CDATA[{v.replace(']]>', ']]]]><![CDATA[>')}]]></{k}>")
    parts.append("</xml>")
    return "".join(parts).encode()
