"""The OpenAPI 3.1 document served at ``GET /api/openapi.json``.

Built as a plain dict next to the route table it describes; a test checks that every route of
the app is documented here and every documented path is routed, so the two cannot drift.
Each component documents its own paths (``social/openapi.py``; rooms and schedules are
generated from their typed routes now) and they are merged here; the WebSocket frames
themselves are described in docs/protocol.md.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from livecommerce import __version__
from livecommerce.apidoc import (
    HOST,
    MAX_ID,
    TIME,
    TIME_OR_NULL,
    USER,
    body,
    errors,
    json_of,
    path_id,
    query,
    ref,
)
from livecommerce.commerce import goods, orders
from livecommerce.httpio import json_response
from livecommerce.social import openapi as social_openapi

ERROR_TEXT = {
    400: "Invalid input; `error.field` names the field",
    401: "Missing, malformed or expired token",
    403: "A token of the wrong kind, or a blocked user",
    404: "No such resource (or not yours)",
    409: "Illegal state transition, sold out, or idempotency key reuse",
    413: "Request body too large",
    429: "Rate limited",
    502: "WeChat failed",
}


_STR_OR_NULL = {"type": ["string", "null"]}
_STEP_TIMES = ("paid_at", "shipped_at", "completed_at", "cancelled_at", "refunded_at")
_CURSOR = query("cursor", {"type": "string", "maxLength": 200}, "`next_cursor` of the last page")

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "description": "Stable machine code"},
                    "message": {"type": "string"},
                    "field": {"type": "string", "description": "The offending input field"},
                },
            }
        },
    },
    "User": {
        "type": "object",
        "required": ["id", "nickname", "avatar_url", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "nickname": {"type": "string"},
            "avatar_url": {"type": "string"},
            "created_at": TIME,
        },
    },
    "LoginResult": {
        "type": "object",
        "required": ["token", "token_type", "expires_at", "expires_in", "user"],
        "properties": {
            "token": {"type": "string", "description": "Bearer token (also for the WebSocket)"},
            "token_type": {"const": "Bearer"},
            "expires_at": {"type": "integer", "description": "Unix seconds"},
            "expires_in": {"type": "integer"},
            "user": ref("User"),
        },
    },
    "Goods": {
        "type": "object",
        "required": [
            "id",
            "host_id",
            "title",
            "description",
            "images",
            "price_fen",
            "stock",
            "category",
            "status",
            "room_ids",
            "created_at",
            "updated_at",
        ],
        "properties": {
            "id": {"type": "integer"},
            "host_id": {"type": ["integer", "null"]},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "images": {"type": "array", "items": {"type": "string"}},
            "price_fen": {"type": "integer", "description": "Price in fen (1/100 CNY)"},
            "stock": {"type": "integer", "description": "Units left to sell"},
            "category": {"type": "string"},
            "status": {"enum": list(goods.STATUSES)},
            "room_ids": {"type": "array", "items": {"type": "integer"}},
            "created_at": TIME,
            "updated_at": TIME,
        },
    },
    "GoodsWrite": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "description": {"type": "string", "maxLength": 5000},
            "images": {
                "type": "array",
                "maxItems": 9,
                "items": {
                    "type": "string",
                    "pattern": "^https?://",
                    "minLength": 8,
                    "maxLength": 500,
                },
            },
            "price_fen": {"type": "integer", "minimum": 0, "maximum": 10**10},
            "stock": {"type": "integer", "minimum": 0, "maximum": 10**7},
            "category": {"type": "string", "maxLength": 50},
            "status": {"enum": list(goods.STATUSES)},
            "room_ids": {
                "type": "array",
                "maxItems": 20,
                "items": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                "description": "Live rooms (of this host) that show the goods",
            },
        },
    },
    "GoodsPage": {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": ref("Goods")},
            "next_cursor": {**_STR_OR_NULL, "description": "Opaque; null on the last page"},
        },
    },
    "Order": {
        "type": "object",
        "required": ["id", "status", "goods_id", "quantity", "unit_price_fen", "total_fen"],
        "properties": {
            "id": {"type": "integer"},
            "out_trade_no": {"type": "string", "description": "Merchant order no. for WeChat Pay"},
            "user_id": {"type": "integer"},
            "goods_id": {"type": "integer"},
            "host_id": {"type": ["integer", "null"]},
            "quantity": {"type": "integer"},
            "unit_price_fen": {"type": "integer", "description": "Price snapshot at creation"},
            "total_fen": {"type": "integer"},
            "title": {"type": "string"},
            "image": {"type": "string"},
            "status": {"enum": list(orders.STATUSES)},
            "carrier": _STR_OR_NULL,
            "tracking_no": _STR_OR_NULL,
            "transaction_id": _STR_OR_NULL,
            "cancel_reason": _STR_OR_NULL,
            "expires_at": {**TIME, "description": "Unpaid orders auto-cancel at this time"},
            **dict.fromkeys(
                ("paid_at", "shipped_at", "completed_at", "cancelled_at", "refunded_at"),
                TIME_OR_NULL,
            ),
            "created_at": TIME,
            "updated_at": TIME,
        },
    },
    "OrderPage": {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": ref("Order")},
            "next_cursor": _STR_OR_NULL,
        },
    },
    "PayAck": {
        "type": "object",
        "required": ["code"],
        "properties": {"code": {"const": "SUCCESS"}, "message": {"type": "string"}},
    },
}

_ORDER_ERRORS = errors(400, 401, 403, 404, 409)

PATHS: dict[str, Any] = {
    "/healthz": {
        "get": {
            "tags": ["ops"],
            "summary": "Liveness: the process serves HTTP",
            "responses": {"200": json_of({"type": "object"}, "Alive")},
        }
    },
    "/readyz": {
        "get": {
            "tags": ["ops"],
            "summary": "Readiness: PostgreSQL and Redis answer",
            "responses": {
                "200": json_of({"type": "object"}, "Ready"),
                "503": json_of({"type": "object"}, "A backend is down (named in checks)"),
            },
        }
    },
    "/metrics": {
        "get": {
            "tags": ["ops"],
            "summary": "Prometheus metrics of this node",
            "responses": {
                "200": {
                    "description": "Prometheus text",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/api/openapi.json": {
        "get": {
            "tags": ["ops"],
            "summary": "This document",
            "responses": {"200": json_of({"type": "object"}, "OpenAPI 3.1 document")},
        }
    },
    "/api/auth/wechat/login": {
        "post": {
            "tags": ["auth"],
            "summary": "Log in with a wx.login code",
            "description": "Exchanges the code via WeChat jscode2session (each code works "
            "once), creates the user on first login, returns a user token.",
            "requestBody": body(
                {
                    "type": "object",
                    "required": ["code"],
                    "additionalProperties": False,
                    "properties": {"code": {"type": "string", "minLength": 1, "maxLength": 128}},
                }
            ),
            "responses": {
                "200": json_of(ref("LoginResult"), "Logged in"),
                **errors(400, 403, 429, 502),
            },
        }
    },
    "/api/me": {
        "get": {
            "tags": ["auth"],
            "summary": "The logged-in user",
            "security": USER,
            "responses": {"200": json_of(ref("User"), "Profile"), **errors(401, 403, 404)},
        }
    },
    "/api/goods": {
        "get": {
            "tags": ["goods"],
            "summary": "Waterfall feed of goods on sale, newest first (keyset pagination)",
            "parameters": [
                query("category", {"type": "string", "maxLength": 50}, "Only this category"),
                query(
                    "room_id",
                    {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                    "Only goods of this live room",
                ),
                query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": goods.MAX_PAGE, "default": 20},
                    "Page size",
                ),
                _CURSOR,
            ],
            "responses": {"200": json_of(ref("GoodsPage"), "A page"), **errors(400)},
        },
        "post": {
            "tags": ["goods"],
            "summary": "Create goods (host)",
            "security": HOST,
            "requestBody": body({**ref("GoodsWrite"), "required": ["title", "price_fen", "stock"]}),
            "responses": {"201": json_of(ref("Goods"), "Created"), **errors(400, 401, 403)},
        },
    },
    "/api/goods/{id}": {
        "parameters": [path_id(what="goods")],
        "get": {
            "tags": ["goods"],
            "summary": "One goods item",
            "responses": {"200": json_of(ref("Goods"), "Goods"), **errors(404)},
        },
        "patch": {
            "tags": ["goods"],
            "summary": "Edit own goods (host); only the given fields change",
            "security": HOST,
            "requestBody": body(ref("GoodsWrite")),
            "responses": {"200": json_of(ref("Goods"), "Updated"), **errors(400, 401, 403, 404)},
        },
    },
    "/api/orders": {
        "post": {
            "tags": ["orders"],
            "summary": "Create an order: snapshot the price, reserve stock",
            "description": "Retrying with the same Idempotency-Key returns the first order (200).",
            "security": USER,
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                }
            ],
            "requestBody": body(
                {
                    "type": "object",
                    "required": ["goods_id", "quantity"],
                    "additionalProperties": False,
                    "properties": {
                        "goods_id": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                        "quantity": {"type": "integer", "minimum": 1, "maximum": 99},
                    },
                }
            ),
            "responses": {
                "201": json_of(ref("Order"), "Created"),
                "200": json_of(ref("Order"), "The order this key created before"),
                **_ORDER_ERRORS,
            },
        },
        "get": {
            "tags": ["orders"],
            "summary": "The caller's orders, newest first",
            "security": USER,
            "parameters": [
                query("status", {"enum": list(orders.STATUSES)}, "Only this status"),
                query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": orders.MAX_PAGE, "default": 20},
                    "Page size",
                ),
                _CURSOR,
            ],
            "responses": {"200": json_of(ref("OrderPage"), "A page"), **errors(400, 401, 403)},
        },
    },
    "/api/orders/{id}": {
        "parameters": [path_id(what="order")],
        "get": {
            "tags": ["orders"],
            "summary": "One of the caller's orders (another user's: 404)",
            "security": USER,
            "responses": {"200": json_of(ref("Order"), "Order"), **errors(401, 403, 404)},
        },
    },
    "/api/orders/{id}/cancel": {
        "parameters": [path_id(what="order")],
        "post": {
            "tags": ["orders"],
            "summary": "Cancel an unpaid order (releases its stock)",
            "security": USER,
            "responses": {"200": json_of(ref("Order"), "Cancelled"), **_ORDER_ERRORS},
        },
    },
    "/api/orders/{id}/confirm": {
        "parameters": [path_id(what="order")],
        "post": {
            "tags": ["orders"],
            "summary": "Confirm receipt of a shipped order",
            "security": USER,
            "responses": {"200": json_of(ref("Order"), "Completed"), **_ORDER_ERRORS},
        },
    },
    "/api/host/orders/{id}/ship": {
        "parameters": [path_id(what="order")],
        "post": {
            "tags": ["orders"],
            "summary": "Ship a paid order of the host's goods",
            "security": HOST,
            "requestBody": body(
                {
                    "type": "object",
                    "required": ["carrier", "tracking_no"],
                    "additionalProperties": False,
                    "properties": {
                        "carrier": {"type": "string", "minLength": 1, "maxLength": 50},
                        "tracking_no": {"type": "string", "minLength": 1, "maxLength": 64},
                    },
                }
            ),
            "responses": {"200": json_of(ref("Order"), "Shipped"), **_ORDER_ERRORS},
        },
    },
    "/api/pay/wechat/notify": {
        "post": {
            "tags": ["payments"],
            "summary": "WeChat Pay v3 payment notification (called by WeChat only)",
            "description": "Verified with the Wechatpay-Signature/-Serial/-Timestamp/-Nonce "
            "headers (RSA-SHA256), resource decrypted with the APIv3 key (AES-256-GCM). Applied "
            "once per transaction id; replays answer 200 'already processed'.",
            "parameters": [
                {
                    "name": f"Wechatpay-{h}",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                }
                for h in ("Timestamp", "Nonce", "Signature", "Serial")
            ],
            "requestBody": body({"type": "object"}),
            "responses": {
                "200": json_of(ref("PayAck"), "Processed (or already processed)"),
                **errors(400, 401),
            },
        }
    },
}


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "livecommerce",
            "version": __version__,
            "description": "Live-commerce HTTP API. Errors are always "
            '`{"error": {"code", "message", "field?"}}`; money is integer fen.',
        },
        "paths": {**PATHS, **social_openapi.PATHS},
        "components": {
            "schemas": {**SCHEMAS, **social_openapi.SCHEMAS},
            "securitySchemes": {
                "userToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A user token from login",
                },
                "hostToken": {"type": "http", "scheme": "bearer", "description": "A host token"},
            },
            "responses": {
                f"E{status}": json_of(ref("Error"), text) for status, text in ERROR_TEXT.items()
            },
        },
    }


async def serve(request: web.Request) -> web.Response:
    """GET /api/openapi.json."""
    return json_response(document())
