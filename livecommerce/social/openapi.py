"""OpenAPI paths and schemas of the social endpoints (merged into ``/api/openapi.json``)."""

from __future__ import annotations

from typing import Any

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
from livecommerce.social import groups

_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
    "description": "Retrying with the same key returns the first result (200)",
}


def _obj(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "additionalProperties": False,
        "properties": props,
    }


_WRITE_ERRORS = errors(400, 401, 403, 404, 409)

SCHEMAS: dict[str, Any] = {
    "FlashSale": {
        "type": "object",
        "required": [
            "id",
            "goods",
            "sale_price_fen",
            "stock",
            "stock_left",
            "per_user_limit",
            "starts_at",
            "ends_at",
        ],
        "properties": {
            "id": {"type": "integer"},
            "host_id": {"type": "integer"},
            "goods": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "title": {"type": "string"},
                    "image": {"type": "string"},
                    "price_fen": {"type": "integer", "description": "Regular price"},
                },
            },
            "sale_price_fen": {"type": "integer"},
            "stock": {"type": "integer", "description": "Units offered in the sale"},
            "stock_left": {"type": "integer", "description": "Live units left (Redis)"},
            "per_user_limit": {"type": "integer"},
            "starts_at": TIME,
            "ends_at": TIME,
            "created_at": TIME,
        },
    },
    "FlashSalePush": {
        "type": "object",
        "required": ["seq", "push_id", "sale"],
        "properties": {
            "seq": {"type": "integer", "description": "Room sequence number of the frame"},
            "push_id": {"type": "string"},
            "sale": ref("FlashSale"),
        },
    },
    "PointsAction": {
        "type": "object",
        "required": ["action", "credited", "points", "day", "balance"],
        "properties": {
            "action": {"enum": ["checkin", "share"]},
            "credited": {"type": "boolean", "description": "False: already done / capped"},
            "points": {"type": "integer", "description": "Points credited by this call"},
            "day": {"type": "string", "format": "date", "description": "In points.time_zone"},
            "balance": {"type": "integer"},
            "reason": {"enum": ["already_shared", "daily_cap"]},
        },
    },
    "PointsBalance": {
        "type": "object",
        "required": ["balance"],
        "properties": {"balance": {"type": "integer", "minimum": 0}},
    },
    "PointsExpiring": {
        "type": "object",
        "required": ["days", "lots", "points"],
        "properties": {
            "days": {"type": "integer"},
            "points": {"type": "integer"},
            "lots": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "lot_id": {"type": "integer"},
                        "points": {"type": "integer"},
                        "expires_at": TIME,
                    },
                },
            },
        },
    },
    "PointsEntry": {
        "type": "object",
        "required": ["id", "kind", "delta", "balance_after", "day", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "kind": {
                "enum": [
                    "checkin",
                    "share",
                    "purchase",
                    "purchase_reversal",
                    "spend",
                    "spend_restore",
                    "expire",
                ]
            },
            "delta": {"type": "integer"},
            "balance_after": {"type": "integer"},
            "day": {"type": "string", "format": "date"},
            "order_id": {"type": ["integer", "null"]},
            "shortfall": {"type": "integer", "description": "Reversal points already spent"},
            "created_at": TIME,
        },
    },
    "PointsPage": {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": ref("PointsEntry")},
            "next_cursor": {"type": ["string", "null"]},
        },
    },
    "GroupOffer": {
        "type": "object",
        "required": ["id", "goods_id", "group_price_fen", "size", "fill_seconds"],
        "properties": {
            "id": {"type": "integer"},
            "host_id": {"type": "integer"},
            "goods_id": {"type": "integer"},
            "group_price_fen": {"type": "integer"},
            "size": {"type": "integer"},
            "fill_seconds": {"type": "integer"},
            "active": {"type": "boolean"},
            "created_at": TIME,
        },
    },
    "GroupOrder": {
        "type": "object",
        "required": ["group_id", "order"],
        "properties": {"group_id": {"type": "integer"}, "order": ref("Order")},
    },
    "Group": {
        "type": "object",
        "required": ["id", "size", "status", "paid_members", "seats_left", "members"],
        "properties": {
            "id": {"type": "integer"},
            "offer_id": {"type": "integer"},
            "goods_id": {"type": "integer"},
            "group_price_fen": {"type": "integer"},
            "leader_id": {"type": "integer"},
            "size": {"type": "integer"},
            "status": {"enum": [s for s in groups.GROUP_STATUSES if s != "pending"]},
            "paid_members": {"type": "integer"},
            "seats_left": {"type": "integer"},
            "expires_at": TIME_OR_NULL,
            "seconds_left": {"type": "integer"},
            "finished_at": TIME_OR_NULL,
            "members": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "user_id": {"type": "integer"},
                        "nickname": {"type": "string"},
                        "avatar_url": {"type": "string"},
                        "paid": {"type": "boolean"},
                        "joined_at": TIME,
                    },
                },
            },
        },
    },
    "GroupList": {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": ref("Group")}},
    },
}

PATHS: dict[str, Any] = {
    "/api/host/flash-sales": {
        "post": {
            "tags": ["flash sales"],
            "summary": "Create a flash sale of the host's goods",
            "security": HOST,
            "requestBody": body(
                _obj(
                    {
                        "goods_id": _ID,
                        "sale_price_fen": {"type": "integer", "minimum": 0},
                        "stock": {"type": "integer", "minimum": 1},
                        "per_user_limit": {"type": "integer", "minimum": 1, "default": 1},
                        "starts_at": TIME,
                        "ends_at": TIME,
                    },
                    ["goods_id", "sale_price_fen", "stock", "starts_at", "ends_at"],
                )
            ),
            "responses": {"201": json_of(ref("FlashSale"), "Created"), **_WRITE_ERRORS},
        }
    },
    "/api/flash-sales/{id}": {
        "parameters": [path_id(what="flash sale")],
        "get": {
            "tags": ["flash sales"],
            "summary": "A flash sale with its live stock left",
            "responses": {"200": json_of(ref("FlashSale"), "The sale"), **errors(404)},
        },
    },
    "/api/flash-sales/{id}/buy": {
        "parameters": [path_id(what="flash sale")],
        "post": {
            "tags": ["flash sales"],
            "summary": "Buy at the sale price (creates an unpaid order)",
            "description": "409 codes: not_started, ended, sold_out, limit_reached, in_progress "
            "(this Idempotency-Key is being processed). The unit returns to the sale if the "
            "order is cancelled, never paid, or refunded.",
            "security": USER,
            "parameters": [_IDEMPOTENCY],
            "requestBody": body(
                _obj({"quantity": {"type": "integer", "minimum": 1, "default": 1}}, []),
                required=False,
            ),
            "responses": {
                "201": json_of(ref("Order"), "Ordered"),
                "200": json_of(ref("Order"), "The order this key created before"),
                **_WRITE_ERRORS,
            },
        },
    },
    "/api/host/flash-sales/{id}/push": {
        "parameters": [path_id(what="flash sale")],
        "post": {
            "tags": ["flash sales"],
            "summary": "Show the sale as a live room's bubble (stock-left updates follow)",
            "security": HOST,
            "requestBody": body(
                _obj(
                    {
                        "room_id": _ID,
                        "show_seconds": {"type": "integer", "minimum": 1, "maximum": 3600},
                    },
                    ["room_id"],
                )
            ),
            "responses": {"200": json_of(ref("FlashSalePush"), "Published"), **_WRITE_ERRORS},
        },
    },
    "/api/points/actions": {
        "post": {
            "tags": ["points"],
            "summary": "Earn points: daily check-in, or sharing goods",
            "security": USER,
            "requestBody": body(
                _obj(
                    {
                        "action": {"enum": ["checkin", "share"]},
                        "goods_id": {**_ID, "description": "Required for share"},
                    },
                    ["action"],
                )
            ),
            "responses": {"200": json_of(ref("PointsAction"), "Done"), **errors(400, 401, 403)},
        }
    },
    "/api/points": {
        "get": {
            "tags": ["points"],
            "summary": "The caller's spendable points",
            "security": USER,
            "responses": {"200": json_of(ref("PointsBalance"), "Balance"), **errors(401, 403)},
        }
    },
    "/api/points/expiring": {
        "get": {
            "tags": ["points"],
            "summary": "Lots of points expiring soon",
            "security": USER,
            "parameters": [
                query(
                    "days",
                    {"type": "integer", "minimum": 1, "maximum": 3660},
                    "Window (default points.expiring_soon_days)",
                )
            ],
            "responses": {"200": json_of(ref("PointsExpiring"), "Lots"), **errors(400, 401, 403)},
        }
    },
    "/api/points/history": {
        "get": {
            "tags": ["points"],
            "summary": "The caller's ledger entries, newest first",
            "security": USER,
            "parameters": [
                query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": 50, "default": 20},
                    "Page size",
                ),
                query("cursor", {"type": "string", "maxLength": 200}, "`next_cursor`"),
            ],
            "responses": {"200": json_of(ref("PointsPage"), "A page"), **errors(400, 401, 403)},
        }
    },
    "/api/points/checkout": {
        "post": {
            "tags": ["points"],
            "summary": "Create an order paying part of it with points (atomically)",
            "description": "409 insufficient_points rolls the order back too.",
            "security": USER,
            "parameters": [_IDEMPOTENCY],
            "requestBody": body(
                _obj(
                    {
                        "goods_id": _ID,
                        "quantity": {"type": "integer", "minimum": 1, "maximum": 99},
                        "points": {"type": "integer", "minimum": 0},
                    },
                    ["goods_id", "quantity", "points"],
                )
            ),
            "responses": {
                "201": json_of(ref("Order"), "Ordered"),
                "200": json_of(ref("Order"), "The order this key created before"),
                **_WRITE_ERRORS,
            },
        }
    },
    "/api/host/group-offers": {
        "post": {
            "tags": ["groups"],
            "summary": "Offer group buying on the host's goods",
            "security": HOST,
            "requestBody": body(
                _obj(
                    {
                        "goods_id": _ID,
                        "group_price_fen": {"type": "integer", "minimum": 0},
                        "size": {"type": "integer", "minimum": 2, "maximum": 100},
                        "fill_seconds": {"type": "integer", "minimum": 60, "maximum": 604800},
                    },
                    ["goods_id", "group_price_fen", "size", "fill_seconds"],
                )
            ),
            "responses": {"201": json_of(ref("GroupOffer"), "Created"), **_WRITE_ERRORS},
        }
    },
    "/api/group-offers/{id}/groups": {
        "parameters": [path_id(what="group offer")],
        "post": {
            "tags": ["groups"],
            "summary": "Open a group: an order at the group price; joinable once paid",
            "security": USER,
            "parameters": [_IDEMPOTENCY],
            "responses": {
                "201": json_of(ref("GroupOrder"), "Opened"),
                "200": json_of(ref("GroupOrder"), "What this key did before"),
                **_WRITE_ERRORS,
            },
        },
    },
    "/api/groups/{id}/join": {
        "parameters": [path_id(what="group")],
        "post": {
            "tags": ["groups"],
            "summary": "Join an open group: a seat and an order at the group price",
            "description": "409 codes: group_full, group_expired, group_closed, "
            "already_joined, already_in_group, sold_out.",
            "security": USER,
            "parameters": [_IDEMPOTENCY],
            "responses": {
                "201": json_of(ref("GroupOrder"), "Joined"),
                "200": json_of(ref("GroupOrder"), "What this key did before"),
                **_WRITE_ERRORS,
            },
        },
    },
    "/api/groups/{id}": {
        "parameters": [path_id(what="group")],
        "get": {
            "tags": ["groups"],
            "summary": "A group: members with avatars, seats and time left",
            "responses": {"200": json_of(ref("Group"), "The group"), **errors(404)},
        },
    },
    "/api/goods/{id}/groups": {
        "parameters": [path_id(what="goods")],
        "get": {
            "tags": ["groups"],
            "summary": "Open groups of the goods with seats left (to join one)",
            "parameters": [
                query(
                    "limit", {"type": "integer", "minimum": 1, "maximum": 50}, "At most this many"
                )
            ],
            "responses": {"200": json_of(ref("GroupList"), "Groups"), **errors(400, 404)},
        },
    },
}
