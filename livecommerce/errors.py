"""The one exception hierarchy, and the middleware that turns it into JSON error bodies.

Every error a client can see is ``{"error": {"code": str, "message": str[, "field": str]}}``::

    AppError (400 bad_request)         -- base; a stable machine ``code`` + a human message
      ValidationError (400 invalid)    -- names the offending ``field``
      Unauthorized (401 unauthorized)  -- missing, bad or expired token
      Forbidden (403 forbidden)        -- authenticated, but not allowed
      NotFound (404 not_found)         -- also for other users' resources (never leak existence)
      Conflict (409 conflict)          -- illegal state transition, duplicate, sold out ...
      PayloadTooLarge (413 payload_too_large)
      RateLimited (429 rate_limited)
      UpstreamError (502 upstream_error)  -- WeChat or another dependency failed
      Unavailable (503 unavailable)

aiohttp's own HTTP exceptions (404 no route, 405, 413 body too large) get the same shape.
Anything else is logged with the request id and answered 500 ``internal`` with no detail.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

log = logging.getLogger("livecommerce.errors")

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


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except AppError as exc:
        return json_response(exc.body(), status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = exc.reason if exc.status != 413 else "request body too large"
        resp = error_response(exc.status, code, message)
        if exc.status == 405 and "Allow" in exc.headers:
            resp.headers["Allow"] = exc.headers["Allow"]
        return resp
    except (ConnectionResetError, OSError) as exc:
        log.info("client connection lost: %s", exc)
        return error_response(400, "connection_lost", "connection lost")
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal", "internal server error")
