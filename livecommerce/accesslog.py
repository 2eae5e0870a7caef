"""One access-log line per HTTP request (logger ``livecommerce.access``).

Fields: method, route template (``/api/orders/{id}``: never the ids, query or body), status,
duration in ms, the request id (from the logging context), and the authenticated principal's
kind (``user``, ``viewer``, ``host`` or ``-``) — never tokens or personal data. ``/healthz`` and
``/metrics`` are quiet unless they fail. In JSON log format the fields are keys of the line.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from livecommerce.api.contract import PRINCIPAL
from livecommerce.errors import Handler

log = logging.getLogger("livecommerce.access")
QUIET = frozenset({"/healthz", "/metrics"})


def route_template(request: web.Request) -> str:
    """The matched route's path template, or ``-`` when no route matched."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "-"


@web.middleware
async def access_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except asyncio.CancelledError:
        status = 499  # the client went away before the answer (nginx's code for it)
        raise
    finally:
        template = route_template(request)
        if status >= 400 or template not in QUIET:
            ms = round((time.perf_counter() - start) * 1000, 1)
            principal = request.get(PRINCIPAL, "-")
            fields = {"method": request.method, "route": template, "status": status,
                      "duration_ms": ms, "principal": principal}  # fmt: skip
            log.info(
                "%s %s %d %.1fms %s", request.method, template, status, ms, principal,
                extra={"fields": fields},
            )  # fmt: skip
