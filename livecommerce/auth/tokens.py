"""Signed bearer tokens: ``base64url(payload).base64url(HMAC-SHA256(secret, payload))``.

One format for every kind of caller, so the token a user gets at login is the one its
WebSocket presents:

* ``user``   — a logged-in WeChat user; ``sub`` is ``users.id``.
* ``viewer`` — an anonymous browser the server issued a token to; ``sub`` is ``anon-<random>``.
* ``host``   — a live-room host; ``sub`` is ``hosts.id``; scoped to that host's rooms.
* ``agent``  — a customer-service agent of a host's shop; ``sub`` is ``support_agents.id``.

The payload is JSON ``{"k": kind, "sub": str, "iat": int, "exp": int}``, plus ``"sv": int`` in a
console session's host token and in an agent session's token (the host's or agent's password
version at sign-in: a new password revokes the session, see ``console/session_guard.py``; an
agent token without it counts as ended), ``"sid": str`` in a console or agent
session's token (the session's random id: signing out revokes that one session, see
``auth/revocation.py``) and ``"oid"`` (the user's WeChat openid)
in user tokens issued at login: the hash attribute of A/B experiments, so a WebSocket buckets its
user exactly as ``GET /api/experiments/assignments`` with no lookup (docs/experiments.md,
"Variants on live bubbles"). Verification is
constant-time and checks expiry; any defect raises :class:`~livecommerce.errors.Unauthorized`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Literal

import orjson

from livecommerce.errors import Unauthorized

Kind = Literal["user", "viewer", "host", "agent"]
KINDS: tuple[Kind, ...] = ("user", "viewer", "host", "agent")
MAX_TOKEN_LENGTH = 1024
MAX_SESSION_ID_LENGTH = 64


@dataclass(frozen=True, slots=True)
class Claims:
    kind: Kind
    subject: str
    issued_at: int
    expires_at: int
    session: int | None = None  # console and agent sessions: their password version (``sv``)
    session_id: str | None = None  # console and agent sessions: revoked by signing out
    openid: str | None = None  # user tokens issued at login (experiments' hash attribute)

    @property
    def user_id(self) -> int | None:
        return int(self.subject) if self.kind == "user" else None

    @property
    def host_id(self) -> int | None:
        return int(self.subject) if self.kind == "host" else None

    @property
    def agent_id(self) -> int | None:
        return int(self.subject) if self.kind == "agent" else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), payload, hashlib.sha256).digest()


def issue_token(
    secret: str,
    kind: Kind,
    subject: str | int,
    ttl_seconds: int,
    *,
    now: float | None = None,
    session: int | None = None,
    session_id: str | None = None,
    openid: str | None = None,
) -> str:
    issued = int(time.time() if now is None else now)
    claims: dict[str, object] = {
        "k": kind, "sub": str(subject), "iat": issued, "exp": issued + ttl_seconds
    }  # fmt: skip
    if session is not None:
        claims["sv"] = session
    if session_id is not None:
        claims["sid"] = session_id
    if openid is not None:
        claims["oid"] = openid
    payload = orjson.dumps(claims)
    return f"{_b64(payload)}.{_b64(_sign(secret, payload))}"


def anonymous_subject() -> str:
    return "anon-" + secrets.token_urlsafe(12)


def verify_token(secret: str, token: str, *, now: float | None = None) -> Claims:
    """The token's claims, or Unauthorized (code ``bad_token`` or ``token_expired``)."""
    if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise Unauthorized("malformed token", code="bad_token")
    body, sig = token.split(".")
    try:
        payload = _unb64(body)
        signature = _unb64(sig)
    except (binascii.Error, ValueError):
        raise Unauthorized("malformed token", code="bad_token") from None
    if not hmac.compare_digest(signature, _sign(secret, payload)):
        raise Unauthorized("bad token signature", code="bad_token")
    try:
        data = orjson.loads(payload)
        kind, subject, iat, exp = data["k"], data["sub"], data["iat"], data["exp"]
        sv = data.get("sv")
        sid = data.get("sid")
        openid = data.get("oid")
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise Unauthorized("malformed token", code="bad_token") from None
    if (
        kind not in KINDS
        or not isinstance(subject, str)
        or not isinstance(exp, int)
        or not isinstance(iat, int)
        or (sv is not None and (not isinstance(sv, int) or isinstance(sv, bool)))
        or not (sid is None or (isinstance(sid, str) and 0 < len(sid) <= MAX_SESSION_ID_LENGTH))
        or not (openid is None or isinstance(openid, str))
    ):
        raise Unauthorized("malformed token", code="bad_token")
    if exp <= (time.time() if now is None else now):
        raise Unauthorized("token expired", code="token_expired")
    return Claims(
        kind=kind, subject=subject, issued_at=iat, expires_at=exp, session=sv, session_id=sid,
        openid=openid,
    )  # fmt: skip
