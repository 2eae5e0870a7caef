"""OpenAPI paths and schemas of the live-room and schedule endpoints (merged into the document).

The WebSocket protocol itself (frames, close codes, resume) is in docs/protocol.md.
"""

from __future__ import annotations

from typing import Any

from livecommerce.apidoc import (
    HOST,
    TIME,
    TIME_OR_NULL,
    body,
    errors,
    json_of,
    path_id,
    ref,
)

_STR = {"type": "string"}


_ROOM = [path_id("room_id")]
_WHEN = {
    "at": {**TIME, "description": "Due time with a zone offset (or offset_seconds)"},
    "offset_seconds": {"type": "number", "minimum": 0, "description": "After the actual start"},
}

SCHEMAS: dict[str, Any] = {
    "Room": {
        "type": "object",
        "required": ["id", "host_id", "title", "state"],
        "properties": {
            "id": {"type": "integer"},
            "host_id": {"type": "integer"},
            "title": _STR,
            "cover_url": _STR,
            "stream_url": _STR,
            "state": {"enum": ["scheduled", "live", "ended"]},
            "planned_start_at": TIME_OR_NULL,
            "started_at": TIME_OR_NULL,
            "ended_at": TIME_OR_NULL,
            "goods": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Schedule": {
        "type": "object",
        "required": ["id", "room_id", "goods_id", "status", "version"],
        "properties": {
            "id": {"type": "integer"},
            "room_id": {"type": "integer"},
            "goods_id": {"type": "integer"},
            "show_seconds": {"type": "integer"},
            "due_at": TIME_OR_NULL,
            "offset_seconds": {"type": ["number", "null"]},
            "idempotency_key": _STR,
            "status": {"enum": ["pending", "fired", "cancelled", "skipped"]},
            "version": {"type": "integer"},
            "fired_at": TIME_OR_NULL,
            "lateness_ms": {"type": ["integer", "null"]},
            "late": {"type": "boolean"},
            "publish_seq": {"type": ["integer", "null"]},
            "skip_reason": {"type": ["string", "null"]},
        },
    },
    "Published": {
        "type": "object",
        "required": ["seq"],
        "properties": {"seq": {"type": "integer"}, "duplicate": {"type": "boolean"}},
    },
}


def _host_action(
    summary: str, ok: dict[str, Any], request: dict[str, Any] | None = None, *, status: str = "200"
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "security": HOST,
        "responses": {status: ok, **errors(400, 401, 403, 404, 409, 413)},
    }
    if request is not None:
        op["requestBody"] = body(request)
    return op


PATHS: dict[str, Any] = {
    "/ws": {
        "get": {
            "summary": "The viewer WebSocket (docs/protocol.md)",
            "parameters": [
                {"name": "room", "in": "query", "required": True, "schema": {"type": "integer"}},
                {"name": "token", "in": "query", "required": False, "schema": _STR},
                {
                    "name": "last_seq",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer"},
                },
                {"name": "epoch", "in": "query", "required": False, "schema": _STR},
            ],
            "responses": {"101": {"description": "Switching to WebSocket"}, **errors(400)},
        }
    },
    "/api/tokens/viewer": {
        "post": {
            "summary": "An anonymous viewer token",
            "responses": {
                "201": json_of(
                    {"type": "object", "required": ["token"], "properties": {"token": _STR}},
                    "Token",
                )
            },
        }
    },
    "/api/rooms": {
        "post": _host_action(
            "Create a live room",
            json_of(ref("Room"), "Created"),
            {
                "type": "object",
                "required": ["title"],
                "properties": {
                    "title": _STR,
                    "cover_url": _STR,
                    "stream_url": _STR,
                    "planned_start_at": TIME,
                },
            },
            status="201",
        )
    },
    "/api/rooms/{room_id}": {
        "parameters": _ROOM,
        "get": {
            "summary": "A room with its goods",
            "responses": {"200": json_of(ref("Room"), "The room"), **errors(404)},
        },
    },
    "/api/rooms/{room_id}/start": {
        "parameters": _ROOM,
        "post": _host_action("Go live", json_of(ref("Room"), "Live")),
    },
    "/api/rooms/{room_id}/end": {
        "parameters": _ROOM,
        "post": _host_action("End the live", json_of(ref("Room"), "Ended")),
    },
    "/api/rooms/{room_id}/started_at": {
        "parameters": _ROOM,
        "put": _host_action(
            "Correct the actual start time (offset schedules follow)",
            json_of({"type": "object"}, "Corrected"),
            {"type": "object", "required": ["started_at"], "properties": {"started_at": TIME}},
        ),
    },
    "/api/rooms/{room_id}/goods": {
        "parameters": _ROOM,
        "post": _host_action(
            "Attach goods to the room",
            json_of(
                {
                    "type": "object",
                    "required": ["goods"],
                    "properties": {"goods": {"type": "array"}},
                },
                "The room's goods",
            ),
            {
                "type": "object",
                "required": ["goods_ids"],
                "properties": {"goods_ids": {"type": "array", "items": {"type": "integer"}}},
            },
        ),
    },
    "/api/rooms/{room_id}/push": {
        "parameters": _ROOM,
        "post": _host_action(
            "Show a goods bubble now (a replayed idempotency_key: 200, first seq)",
            json_of(ref("Published"), "Replayed"),
            {
                "type": "object",
                "required": ["goods_id"],
                "properties": {
                    "goods_id": {"type": "integer"},
                    "show_seconds": {"type": "integer"},
                    "idempotency_key": _STR,
                },
            },
            status="201",
        ),
    },
    "/api/rooms/{room_id}/withdraw": {
        "parameters": _ROOM,
        "post": _host_action("Hide the current bubble", json_of(ref("Published"), "Published")),
    },
    "/api/rooms/{room_id}/schedules": {
        "parameters": _ROOM,
        "get": {
            "summary": "The room's scheduled pushes",
            "security": HOST,
            "responses": {
                "200": json_of(
                    {
                        "type": "object",
                        "required": ["schedules"],
                        "properties": {"schedules": {"type": "array", "items": ref("Schedule")}},
                    },
                    "Schedules",
                ),
                **errors(401, 403, 404),
            },
        },
        "post": _host_action(
            "Schedule a goods push at a time or an offset from the actual start",
            json_of(ref("Schedule"), "Scheduled"),
            {
                "type": "object",
                "required": ["goods_id", "idempotency_key"],
                "properties": {
                    "goods_id": {"type": "integer"},
                    "show_seconds": {"type": "integer"},
                    "idempotency_key": _STR,
                    **_WHEN,
                },
            },
            status="201",
        ),
    },
    "/api/rooms/{room_id}/schedules/{schedule_id}": {
        "parameters": [*_ROOM, path_id("schedule_id")],
        "patch": _host_action(
            "Reschedule (the old time never fires)",
            json_of(ref("Schedule"), "Rescheduled"),
            {"type": "object", "properties": _WHEN},
        ),
        "delete": _host_action(
            "Cancel (409 already_fired if it fired)", json_of(ref("Schedule"), "Cancelled")
        ),
    },
}
