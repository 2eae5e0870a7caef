"""The one exception hierarchy, and the middleware that turns it into JSON error bodies.

Every error a client can see is ``{"error": {"code": str, "message": str[, "field": str]}}``::

    AppError (400 bad_request)         -- base; a stable machine ``code`` + a human message
      ValidationError (400 invalid)    -- names the offending ``field``
      Unauthorized (401 unauthorized)  -- missing, bad or expired token
      Forbidden (403 forbidden)        -- authenticated, but not allowed
      NotFound (404 not_found)         -- also for other users' resources (never leak existence)
      RequestTimeout (408 request_timeout)  -- the request head or body came too slowly
      Conflict (409 conflict)          -- illegal state transition, duplicate, sold out ...
      PayloadTooLarge (413 payload_too_large)
      RateLimited (429 rate_limited)
      UpstreamError (502 upstream_error)  -- WeChat or another dependency failed
      Unavailable (503 unavailable)       -- always with a ``Retry-After`` header (seconds)
        BackendUnavailable                -- adds ``"backend": "postgres" | "redis"``

aiohttp's own HTTP exceptions (404 no route, 405, 413 body too large) get the same shape, and so
does a body that cannot be read as sent (``Content-Encoding: gzip`` over a body that is not gzip:
400 ``bad_encoding``; see :func:`body_error_response`). A malformed request *head* never reaches
a handler: :mod:`livecommerce.http_server` answers it in the same shape.

A backend that cannot be reached — decided by exception class and origin in
:func:`livecommerce.outage.unavailable_backend`, never by message text — is answered 503::

    {"error": {"code": "unavailable", "message": "PostgreSQL is unavailable; retry later",
               "backend": "postgres"}}            Retry-After: 2

and logged once per outage (:class:`livecommerce.outage.OutageLog`), not once per request. The
client's own connection dropping mid-request is logged at debug level (nobody is left to answer).
A write that names a user or host missing from the database — only a well-signed token of an
account that no longer exists can (a development database reset) — is 401 ``unknown_account``.
Anything else is logged with the request id and answered 500 ``internal`` with no detail.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson
from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError, DecompressSizeError
from aiohttp.typedefs import Middleware

from livecommerce.outage import NAMES, OutageLog, suspected_backend, unavailable_backend

log = logging.getLogger("livecommerce.errors")
RETRY_AFTER_SECONDS = 2  # the Retry-After of every 503: a backend is probed every 0.25 s

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AppError(Exception):
    status: int = 400
    code: str = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.field = field

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            err["field"] = self.field
        return {"error": err}


class ValidationError(AppError):
    code = "invalid"

    def __init__(self, field: str, message: str, *, code: str | None = None) -> None:
        super().__init__(f"{field}: {message}", code=code, field=field)


class Unauthorized(AppError):
    status, code = 401, "unauthorized"


class Forbidden(AppError):
    status, code = 403, "forbidden"


class NotFound(AppError):
    status, code = 404, "not_found"


class RequestTimeout(AppError):
    status, code = 408, "request_timeout"


class Conflict(AppError):
    status, code = 409, "conflict"


class PayloadTooLarge(AppError):
    status, code = 413, "payload_too_large"


class RateLimited(AppError):
    status, code = 429, "rate_limited"


class UpstreamError(AppError):
    status, code = 502, "upstream_error"


class Unavailable(AppError):
    status, code = 503, "unavailable"


class BackendUnavailable(Unavailable):
    """PostgreSQL or Redis cannot be reached; ``backend`` is ``"postgres"`` or ``"redis"``."""

    def __init__(self, backend: str) -> None:
        super().__init__(f"{NAMES.get(backend, backend)} is unavailable; retry later")
        self.backend = backend

    def body(self) -> dict[str, Any]:
        out = super().body()
        out["error"]["backend"] = self.backend
        return out


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def json_response(data: Any, *, status: int) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def error_response(status: int, code: str, message: str) -> web.Response:
    return json_response({"error": {"code": code, "message": message}}, status=status)


def app_error_response(exc: AppError) -> web.Response:
    """The JSON answer to ``exc``; a 503 carries ``Retry-After``."""
    resp = json_response(exc.body(), status=exc.status)
    if exc.status == 503:
        resp.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return resp


def body_error_response(request: web.Request, exc: web.RequestPayloadError) -> web.Response:
    """The answer to a body aiohttp could not read: 400 ``bad_encoding`` when it is not what its
    ``Content-Encoding`` says (gzip, deflate, br), 413 when it inflates past the limit, 400
    ``bad_request`` when it is malformed otherwise (chunking, cut short). The connection is
    closed after the answer: the rest of the body cannot be trusted to frame the next request."""
    # Nothing more can be read from this body: without this, aiohttp's lingering read of the
    # unread rest would meet the same error again and log it with a traceback.
    request.content.feed_eof()
    cause = exc.__cause__
    if isinstance(cause, DecompressSizeError):
        resp = error_response(413, "payload_too_large", "decompressed body too large")
    elif isinstance(cause, ContentEncodingError):
        resp = error_response(
            400, "bad_encoding", "the body is not valid data for its Content-Encoding"
        )
    else:
        resp = error_response(400, "bad_request", "malformed request body")
    resp.force_close()
    return resp


def error_middleware_for(outages: OutageLog | None) -> Middleware:
    """The error middleware; backend outages are reported to ``outages`` (None: logged each)."""

    @web.middleware
    async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except AppError as exc:
            return app_error_response(exc)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = _HTTP_CODES.get(exc.status, "http_error")
            message = exc.reason if exc.status != 413 else "request body too large"
            resp = error_response(exc.status, code, message)
            if exc.status == 405 and "Allow" in exc.headers:
                resp.headers["Allow"] = exc.headers["Allow"]
            return resp
        except web.RequestPayloadError as exc:
            return body_error_response(request, exc)
        except Exception as exc:
            return await _unexpected(request, exc, outages)

    return error_middleware


async def _unexpected(
    request: web.Request, exc: Exception, outages: OutageLog | None
) -> web.Response:
    backend = unavailable_backend(exc)
    if backend is None and outages is not None:
        suspect = suspected_backend(exc)
        if suspect is not None and await outages.confirm(suspect):
            backend = suspect
    if backend is not None:
        if outages is not None:
            outages.failed(backend, exc)
        else:
            log.warning("%s unavailable: %r", backend, exc)
        return app_error_response(BackendUnavailable(backend))
    if _unknown_account(exc):
        # A well-signed token of a user or host that is not in the database (a development
        # database reset, a restored backup): only the token can have named it.
        return error_response(
            401, "unknown_account", "the token's account does not exist; sign in again"
        )
    transport = request.transport
    if isinstance(exc, ConnectionError) and (transport is None or transport.is_closing()):
        # The client went away mid-request: nobody reads this answer; not our error.
        log.debug("client connection lost in %s %s: %r", request.method, request.path, exc)
        return error_response(400, "connection_lost", "connection lost")
    log.exception("unhandled error in %s %s", request.method, request.path)
    return error_response(500, "internal", "internal server error")


_ACCOUNT_KEYS = ("_user_id_fkey", "_host_id_fkey", "groups_leader_id_fkey")


def _unknown_account(exc: Exception) -> bool:
    """A write refused because its ``user_id`` / ``host_id`` (a group's ``leader_id``) names no
    user or host: every such reference written comes from the caller's token."""
    if not isinstance(exc, asyncpg.ForeignKeyViolationError):
        return False
    name = exc.constraint_name or ""
    return name.endswith(_ACCOUNT_KEYS)


error_middleware = error_middleware_for(None)
