"""aiohttp's per-connection protocol as we run it: requests it cannot parse are answered in the
JSON error shape, and logged as one rate-limited line instead of one traceback each.

aiohttp answers a malformed request head (bad request line, invalid header, a body that
cannot be de-chunked or inflated while parsing) with a ``text/plain`` 400 and logs an ERROR with
a traceback per request — anyone could flood the log. :class:`JsonErrorRequestHandler` answers
``{"error": {"code": "bad_request", "message": "malformed request (InvalidHeader)"}}`` with
``Connection: close`` and logs at most one warning line per :data:`LOG_INTERVAL_SECONDS` (with
the count of those not logged). The listening site makes every aiohttp protocol with
:func:`new_handler`; :func:`make_runner` is the one way the server and the tests build the runner
(it carries ``server.keepalive_timeout_seconds``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.web_request import BaseRequest

from livecommerce import keys
from livecommerce.errors import Handler, RequestTimeout, app_error_response, error_response

log = logging.getLogger("livecommerce.http")
LOG_INTERVAL_SECONDS = 10.0


class RateLimitedLog:
    """At most one warning line per ``interval`` seconds; the lines held back are counted and
    reported with the next one."""

    def __init__(self, logger: logging.Logger, interval: float = LOG_INTERVAL_SECONDS) -> None:
        self.logger, self.interval = logger, interval
        self.last = -interval
        self.held = 0

    def warning(self, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            self.held += 1
            return
        self.last = now
        if self.held:
            msg += f" (+{self.held} more lines like this held back)"
            self.held = 0
        self.logger.warning(msg, *args)


bad_requests = RateLimitedLog(log)


class JsonErrorRequestHandler(web.RequestHandler):
    """aiohttp's ``RequestHandler`` with our answer to what it cannot parse."""

    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The JSON error for a request aiohttp could not parse (``status`` 400) or, should one
        escape the middlewares, a failed handler (500: logged with its traceback)."""
        kind = type(exc).__name__ if exc is not None else "error"
        if status >= 500:
            log.error("error handling request from %s", request.remote, exc_info=exc)
        else:
            bad_requests.warning("malformed request from %s: %s", request.remote, kind)
        if request.writer.output_size > 0:  # as aiohttp: too late for another response
            raise ConnectionError("response already started; cannot send the error response")
        if status >= 500:
            resp = error_response(500, "internal", "internal server error")
        else:
            code = "bad_encoding" if isinstance(exc, ContentEncodingError) else "bad_request"
            resp = error_response(status, code, f"malformed request ({kind})")
        resp.force_close()
        return resp


class BodyTimeout(Exception):
    """The request body did not arrive within ``server.request_body_timeout_seconds``."""


@web.middleware
async def body_timeout_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bound the time a request body may take to arrive: ``server.request_body_timeout_seconds``
    after the handler starts, a body not yet complete fails the handler's read of it, and the
    answer is 408 ``request_timeout`` with the connection closed. A client trickling its body
    cannot hold a handler, a connection and its buffers for ever. Nothing is read ahead of the
    handler (``request.can_read_body`` and streaming reads behave as without it). Placed inside
    the error middleware, which answers a body that is too large (413) or mis-encoded (400)."""
    if not request.body_exists:
        return await handler(request)
    settings = request.app.get(keys.SETTINGS)
    seconds = settings.server.request_body_timeout_seconds if settings else 30.0
    payload = request.content

    def expire() -> None:
        if not payload.is_eof():  # not all of it received yet (read or not)
            payload.set_exception(BodyTimeout())

    timer = asyncio.get_running_loop().call_later(seconds, expire)
    try:
        return await handler(request)
    except BodyTimeout:
        bad_requests.warning("request body not complete in time from %s", request.remote)
        payload.feed_eof()  # no lingering read of the rest: close after the 408
        resp = app_error_response(RequestTimeout("the request body did not arrive in time"))
        resp.force_close()
        return resp
    finally:
        timer.cancel()
        if isinstance(payload.exception(), BodyTimeout):
            payload.feed_eof()  # the handler never read it: spare aiohttp's lingering read


def new_handler(server: web.Server) -> web.RequestHandler:
    """What ``server()`` makes (aiohttp's ``Server.__call__``), as a JsonErrorRequestHandler."""
    kwargs: dict[str, Any] = getattr(server, "_kwargs", {})
    return JsonErrorRequestHandler(server, loop=asyncio.get_running_loop(), **kwargs)


def make_runner(app: web.Application, *, shutdown_timeout: float = 10.0) -> web.AppRunner:
    """The runner for ``app``: no signal handling or access log (metrics cover it), and an idle
    keep-alive connection closed after ``server.keepalive_timeout_seconds`` (aiohttp's default
    is an hour). That timer also bounds a later request head that never completes."""
    settings = app.get(keys.SETTINGS)
    extra: dict[str, Any] = {}
    if settings is not None:
        extra["keepalive_timeout"] = settings.server.keepalive_timeout_seconds
    return web.AppRunner(
        app, handle_signals=False, shutdown_timeout=shutdown_timeout, access_log=None, **extra
    )


def raw_error(status: int, reason: str, code: str, message: str) -> bytes:
    """A complete ``Connection: close`` HTTP/1.1 response with the JSON error body, as bytes (for
    answers written before aiohttp has the connection)."""
    body = orjson.dumps({"error": {"code": code, "message": message}})
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body
