"""The OpenAPI 3.1 document, generated from the route table and its msgspec models.

Nothing here describes an endpoint: operation ids and summaries come from the handlers,
parameters and bodies from their ``Call[Body, Query]`` annotations, responses from their return
annotations (JSON Schema 2020-12 from :func:`msgspec.json.schema_components`, which OpenAPI 3.1
takes as is), error responses from what the route can answer (auth, path ids, body, key).
"""

from __future__ import annotations

from typing import Any

import msgspec

from livecommerce import __version__
from livecommerce.api.contract import MAX_ID, Model, Route
from livecommerce.api.decode import IDEMPOTENCY_KEY

REF = "#/components/schemas/{name}"


class ErrorDetail(Model):
    """What went wrong: a stable machine ``code``, a human ``message``, the offending ``field``."""

    code: str
    message: str
    field: str | msgspec.UnsetType = msgspec.UNSET


class Error(Model):
    """The one error body every endpoint answers with."""

    error: ErrorDetail


ERROR_TEXT = {
    400: "Invalid input; `error.field` names the field",
    401: "Missing, malformed or expired token",
    403: "A token of the wrong kind, or a blocked user",
    404: "No such resource (or not yours)",
    409: "Illegal state transition, sold out, or idempotency key reuse",
    413: "Request body too large",
    429: "Rate limited",
    502: "WeChat failed",
    503: "A backend (PostgreSQL or Redis) is unavailable; retry after `Retry-After` seconds",
}
SECURITY = {
    "user": ("userToken", "A user token from `POST /api/auth/wechat/login`"),
    "host": ("hostToken", "A host token"),
    "viewer": ("viewerToken", "An anonymous viewer token from `POST /api/tokens/viewer`"),
    "agent": ("agentToken", "A customer-service agent's session (`POST /api/agent/session`)"),
}
# The admin routes (``route(..., admin=True)``): the configured token, not a signed one.
ADMIN_SECURITY = (
    "adminToken",
    "The server's `security.admin_token` (config, or `LIVECOMMERCE_SECURITY_ADMIN_TOKEN`); "
    "with none configured the admin routes answer a token 403 `admin_disabled`",
)
_ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}


def _types(routes: list[Route]) -> list[Any]:
    seen: list[Any] = [Error]
    for r in routes:
        for t in (r.body, r.query, r.response, *(x.schema for x in r.raw_responses)):
            if t is not None and t not in seen:
                seen.append(t)
    return seen


def _query_parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        # An absent parameter is the None of `X | None`: a query has no null to send.
        alternatives = [a for a in prop.pop("anyOf", []) if a != {"type": "null"}]
        if len(alternatives) == 1:
            prop.update(alternatives[0])
        elif alternatives:
            prop["anyOf"] = alternatives
        if prop.get("default", 0) is None:
            del prop["default"]
        description = prop.pop("description", None)
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if name not in required:
            # An empty value counts as absent (api/models.py, Query): `?room_id=` is accepted.
            param["allowEmptyValue"] = True
        if description:
            param["description"] = description
        params.append(param)
    return params


def _operation(r: Route, schemas: dict[Any, dict[str, Any]], components: dict[str, Any]) -> Any:
    op: dict[str, Any] = {
        "operationId": r.operation_id,
        "summary": r.summary,
        "tags": [r.tag or r.operation_id.split(".")[0]],
    }
    description = r.description
    if r.rules:
        description += "\n\nAlso 400 (naming the field) when:\n" + "".join(
            f"\n- {rule}" for rule in r.rules
        )
        op["x-rules"] = list(r.rules)
    if description:
        op["description"] = description.strip()
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string"} if r.raw else _ID_SCHEMA,
        }
        for name in r.path_params
    ]
    if r.idempotency_key:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": True,
                "description": "Replays with the same key answer the first result",
                "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY.pattern},
            }
        )
    if r.query is not None:
        name = schemas[r.query]["$ref"].rsplit("/", 1)[1]
        params += _query_parameters(components[name])
    if params:
        op["parameters"] = params
    if r.body is not None:
        name = schemas[r.body]["$ref"].rsplit("/", 1)[1]
        op["requestBody"] = {
            # A model with no required field takes an empty body (read as {}).
            "required": bool(components[name].get("required")),
            "content": {"application/json": {"schema": schemas[r.body]}},
        }
    if r.auth:
        op["security"] = [{SECURITY[kind][0]: []} for kind in r.auth]
    elif r.admin:
        op["security"] = [{ADMIN_SECURITY[0]: []}]
    responses: dict[str, Any] = {}
    if r.raw:
        for raw in r.raw_responses:
            entry: dict[str, Any] = {"description": raw.description}
            if raw.media_type:
                schema = schemas[raw.schema] if raw.schema is not None else {"type": "string"}
                entry["content"] = {raw.media_type: {"schema": schema}}
            responses[str(raw.status)] = entry
    else:
        for status in (r.status, *r.also):
            responses[str(status)] = {
                "description": "OK" if status < 300 else "",
                "content": {"application/json": {"schema": schemas[r.response]}},
            }
    for status in r.error_statuses():
        responses.setdefault(str(status), {"$ref": f"#/components/responses/E{status}"})
    op["responses"] = responses
    return op


def document(routes: list[Route]) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document for these routes."""
    types = _types(routes)
    refs, components = msgspec.json.schema_components(types, ref_template=REF)
    schemas = dict(zip(types, refs, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        paths.setdefault(r.path, {})[r.method.lower()] = _operation(r, schemas, components)
    for r in routes:  # query models are parameters, not schemas
        if r.query is not None:
            components.pop(schemas[r.query]["$ref"].rsplit("/", 1)[1], None)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "livecommerce",
            "version": __version__,
            "description": "Live-commerce HTTP API. Errors are always "
            '`{"error": {"code", "message", "field?"}}`; money is integer fen. The WebSocket '
            "frames are described in docs/protocol.md.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                name: {"type": "http", "scheme": "bearer", "description": text}
                for name, text in (*SECURITY.values(), ADMIN_SECURITY)
            },
            "responses": {
                f"E{status}": {
                    "description": text,
                    "content": {"application/json": {"schema": {"$ref": REF.format(name="Error")}}},
                }
                for status, text in ERROR_TEXT.items()
            },
        },
    }
