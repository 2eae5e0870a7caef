"""The typed HTTP contract: each endpoint is one handler whose signature is its contract.

A handler is ``async def name(call: Call[Body, Query]) -> Response`` where ``Body`` and
``Query`` are :class:`msgspec.Struct` models (or ``None``) and ``Response`` is the model the
answer is serialized through (or :class:`Reply` of it, to pick the status at run time). The
route table (``Route`` values built with :func:`route`) adds what a signature cannot say:
method, path, who may call it (token kinds, or the admin token), the success status, extra
error statuses. From the two come:

* decoding and validation — msgspec decodes the body in one pass (unknown fields refused,
  constraints on the model) and converts the query string; every defect is a 400
  ``{"error": {"code": "invalid", "message", "field"}}`` with ``field`` from msgspec's path;
* serialization — the handler's value goes through the response model, so a response can
  never carry a field its schema does not list;
* the OpenAPI 3.1 document (:mod:`livecommerce.api.openapi`), generated from the same routes.

Path parameters (``{id}``, ``{room_id}``) are always positive bigint ids: anything else names no
resource and is a 404, like an id that does not exist.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, get_args, get_origin, get_type_hints

import msgspec
from aiohttp import web

from livecommerce.api.decode import (  # re-exported: handlers import them from here
    MAX_ID,
    convert,
    decode_body,
    decode_query,
    field_error,
    idempotency_key,
    path_ids,
)
from livecommerce.api.models import Body, Model, Query
from livecommerce.auth.http import require_admin, require_claims
from livecommerce.auth.tokens import Claims, Kind
from livecommerce.errors import ValidationError

__all__ = [
    "MAX_ID",
    "Body",
    "Call",
    "Model",
    "Query",
    "Reply",
    "Route",
    "add_routes",
    "convert",
    "decode_body",
    "decode_query",
    "field_error",
    "idempotency_key",
    "path_ids",
    "raw_route",
    "route",
    "to",
]

_PATH_PARAM = re.compile(r"\{(\w+)\}")

# Who may call a route (``auth=``): one token kind, or any of several.
USER: tuple[Kind, ...] = ("user",)
HOST: tuple[Kind, ...] = ("host",)
VIEWER: tuple[Kind, ...] = ("viewer",)
AGENT: tuple[Kind, ...] = ("agent",)

B = TypeVar("B")
Q = TypeVar("Q")
T = TypeVar("T")


@dataclass(slots=True)
class Reply(Generic[T]):
    """A response body with a status chosen at run time (e.g. 201 created / 200 replayed)."""

    body: T
    status: int = 200
    headers: dict[str, str] | None = None


@dataclass(slots=True)
class Call(Generic[B, Q]):
    """One decoded request: the typed body and query, the caller's claims and path ids."""

    request: web.Request
    body: B
    query: Q
    claims: Claims | None
    ids: dict[str, int]
    idempotency_key: str

    @property
    def app(self) -> web.Application:
        return self.request.app

    def id(self, name: str = "id") -> int:
        """The path id ``{name}`` (validated before the handler runs)."""
        return self.ids[name]

    @property
    def user_id(self) -> int:
        """The caller's user id (the route requires a user token)."""
        assert self.claims is not None
        assert self.claims.user_id is not None
        return self.claims.user_id

    @property
    def host_id(self) -> int:
        """The caller's host id (the route requires a host token)."""
        assert self.claims is not None
        assert self.claims.host_id is not None
        return self.claims.host_id

    @property
    def agent_id(self) -> int:
        """The caller's agent id (the route requires an agent token)."""
        assert self.claims is not None
        assert self.claims.agent_id is not None
        return self.claims.agent_id


Handler = Callable[[Any], Awaitable[Any]]
RawHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Checks the raw body before it is decoded (e.g. a signature over the exact bytes); raises.
Guard = Callable[[web.Request, bytes], None]


@dataclass(frozen=True, slots=True)
class RawResponse:
    """How a raw (non-JSON-model) route answers, for the document: status, media type, text."""

    status: int
    description: str
    media_type: str | None = None
    schema: type[Any] | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint: where it lives, who may call it, and its handler's typed contract.

    ``body``, ``query`` and ``response`` come from the handler's annotations; ``raw`` routes
    (WebSocket upgrade, Prometheus text, the docs page) take the aiohttp request themselves and
    describe their answers in ``raw_responses`` (and their query in ``query``, which they must
    decode with :func:`decode_query`).
    """

    method: str
    path: str
    handler: Handler
    auth: tuple[Kind, ...] = ()
    status: int = 200
    also: tuple[int, ...] = ()
    errors: tuple[int, ...] = ()
    idempotency_key: bool = False
    tag: str = ""
    body: type[Any] | None = None
    query: type[Any] | None = None
    response: Any = None
    guard: Guard | None = None
    rules: tuple[str, ...] = ()
    raw: bool = False
    raw_responses: tuple[RawResponse, ...] = ()
    path_params: tuple[str, ...] = field(default=())
    # Called with the admin token (``security.admin_token``) instead of a signed token.
    admin: bool = False

    @property
    def operation_id(self) -> str:
        module = self.handler.__module__.split(".")
        name = module[-1].removesuffix("_api")
        if name in ("routes", "http", "service", "ops", "setup"):
            name = module[-2] if name != "ops" else "ops"
        return f"{name}.{self.handler.__name__}"

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.handler) or ""
        return doc.split("\n\n", 1)[0].replace("\n", " ").strip()

    @property
    def description(self) -> str:
        doc = inspect.getdoc(self.handler) or ""
        parts = doc.split("\n\n", 1)
        return parts[1].strip() if len(parts) > 1 else ""

    def error_statuses(self) -> tuple[int, ...]:
        """Every error status this route can answer (documented in the OpenAPI document)."""
        statuses = set(self.errors) | {503}
        if self.body is not None or self.query is not None or self.idempotency_key or self.rules:
            statuses.add(400)
        if self.body is not None:
            statuses.add(413)
        if self.auth or self.admin:
            statuses |= {401, 403}
        if self.path_params:
            statuses.add(404)
        return tuple(sorted(statuses))


def _model_args(handler: Handler) -> tuple[type[Any] | None, type[Any] | None, Any]:
    """(body type, query type, response type) from ``handler(call: Call[B, Q]) -> R``."""
    hints = get_type_hints(handler)
    params = [p for p in inspect.signature(handler).parameters if p != "return"]
    if len(params) != 1:
        raise TypeError(f"{handler.__qualname__}: a handler takes exactly one Call argument")
    call_type = hints[params[0]]
    if get_origin(call_type) is not Call:
        raise TypeError(f"{handler.__qualname__}: annotate its argument as Call[Body, Query]")
    body, query = (None if a is type(None) else a for a in get_args(call_type))
    response = hints.get("return")
    if get_origin(response) is Reply:
        response = get_args(response)[0]
    return body, query, response


def route(
    method: str,
    path: str,
    handler: Handler,
    *,
    auth: tuple[Kind, ...] = (),
    admin: bool = False,
    status: int = 200,
    also: tuple[int, ...] = (),
    errors: tuple[int, ...] = (),
    idempotency_key: bool = False,
    tag: str = "",
    guard: Guard | None = None,
    rules: tuple[str, ...] = (),
) -> Route:
    """A typed route; body/query/response types are read from the handler's annotations.

    ``auth``: the token kinds that may call it; ``admin``: the admin token alone may (a token
    is 403 ``admin_disabled`` when none is configured). Either is checked before anything else
    of the request is read, and declared in the OpenAPI document (``security``).

    ``guard`` sees the raw body before it is decoded (a signature check answers 401 before a
    malformed body answers 400). ``rules`` name what the handler or service refuses with a 400
    although the schema allows it (ownership, config limits, cross-field rules); they are listed
    in the operation's description and under ``x-rules``."""
    if auth and admin:
        raise ValueError(f"{method} {path}: a route takes tokens or the admin token, not both")
    body, query, response = _model_args(handler)
    return Route(
        method=method,
        path=path,
        handler=handler,
        auth=auth,
        admin=admin,
        status=status,
        also=also,
        errors=errors,
        idempotency_key=idempotency_key,
        tag=tag,
        guard=guard,
        rules=rules,
        body=body,
        query=query,
        response=response,
        path_params=tuple(_PATH_PARAM.findall(path)),
    )


def raw_route(
    method: str,
    path: str,
    handler: RawHandler,
    *,
    responses: tuple[RawResponse, ...],
    query: type[Any] | None = None,
    auth: tuple[Kind, ...] = (),
    errors: tuple[int, ...] = (),
    tag: str = "",
    rules: tuple[str, ...] = (),
) -> Route:
    """A route answering with something other than a JSON model (documented by ``responses``)."""
    return Route(
        rules=rules,
        method=method,
        path=path,
        handler=handler,
        auth=auth,
        errors=errors,
        tag=tag,
        query=query,
        raw=True,
        raw_responses=responses,
        path_params=tuple(_PATH_PARAM.findall(path)),
    )


# -- answering --------------------------------------------------------------------------------

_encoder = msgspec.json.Encoder()


def to(model: type[T], value: Any) -> T:
    """``value`` (a service's dict, list or row) as the response model ``model``.

    Keys the model does not list are dropped; a missing or mistyped one is a bug and raises
    ``msgspec.ValidationError`` (a 500, caught by the contract tests).
    """
    return msgspec.convert(value, model, from_attributes=True)


def encode(value: Any, model: Any) -> bytes:
    """``value`` serialized through ``model`` (a Struct passes as is; dicts are converted)."""
    if model is None or isinstance(value, msgspec.Struct):
        return _encoder.encode(value)
    return _encoder.encode(msgspec.convert(value, model, from_attributes=True))


def json_response(body: bytes, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


class NoBody(Body):
    """What a route without a body accepts when one is sent anyway: nothing, or ``{}`` (a
    malformed body or any field is a 400, as on every other route)."""


def bind(r: Route) -> RawHandler:
    """The aiohttp handler for a route: auth, path ids, key, query, body, call, serialize."""
    if r.raw:
        return r.handler

    async def handle(request: web.Request) -> web.StreamResponse:
        claims = require_claims(request, *r.auth) if r.auth else None
        if claims is not None:
            request[PRINCIPAL] = claims.kind
        elif r.admin:
            require_admin(request)
            request[PRINCIPAL] = "admin"
        ids = path_ids(request, r.path_params)
        key = idempotency_key(request) if r.idempotency_key else ""
        if r.query is not None:
            query = decode_query(request, r.query)
        elif request.query:
            raise ValidationError(next(iter(request.query))[:64], "unknown query parameter")
        else:
            query = None
        body = None
        if r.body is not None or r.guard is not None:
            raw = await request.read()
            if r.guard is not None:
                r.guard(request, raw)
            if r.body is not None:
                body = decode_body(raw, r.body)
        elif request.body_exists:  # a route without a body takes none, or `{}`: not anything
            decode_body(await request.read(), NoBody)
        result = await r.handler(Call(request, body, query, claims, ids, key))
        if isinstance(result, web.StreamResponse):
            return result
        if isinstance(result, Reply):
            return json_response(encode(result.body, r.response), result.status, result.headers)
        return json_response(encode(result, r.response), r.status)

    handle.__name__ = r.handler.__name__
    handle.__doc__ = r.handler.__doc__
    return handle


ROUTES = web.AppKey("api_routes", list[Route])
# The authenticated caller's kind (user, viewer, host, agent, or admin), for the access log.
PRINCIPAL = web.RequestKey("principal", str)


def add_routes(app: web.Application, routes: list[Route] | tuple[Route, ...]) -> None:
    """Register ``routes`` on the app's router and remember them for the OpenAPI document."""
    app.setdefault(ROUTES, [])
    for r in routes:
        if r.method == "GET":  # GET answers HEAD too (aiohttp's add_get)
            app.router.add_get(r.path, bind(r))
        else:
            app.router.add_route(r.method, r.path, bind(r))
        app[ROUTES].append(r)
