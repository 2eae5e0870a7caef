"""OpenAPI paths and schemas of the live-room and schedule endpoints (merged into the document).

The WebSocket protocol itself (frames, close codes, resume) is in docs/protocol.md.
"""

from __future__ import annotations

from typing import Any

JSON = "application/json"
MAX_ID = 2**63 - 1
HOST: list[dict[str, list[str]]] = [{"hostToken": []}]
_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_STR = {"type": "string"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def _path_id(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    }


_ROOM = [_path_id("room_id")]
_WHEN = {
    "at": {**_TIME, "description": "Due time with a zone offset (or offset_seconds)"},
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
            "planned_start_at": _TIME_OR_NULL,
            "started_at": _TIME_OR_NULL,
            "ended_at": _TIME_OR_NULL,
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
            "due_at": _TIME_OR_NULL,
            "offset_seconds": {"type": ["number", "null"]},
            "idempotency_key": _STR,
            "status": {"enum": ["pending", "fired", "cancelled", "skipped"]},
            "version": {"type": "integer"},
            "fired_at": _TIME_OR_NULL,
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
    summary: str, ok: dict[str, Any], body: dict[str, Any] | None = None, *, status: str = "200"
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "security": HOST,
        "responses": {status: ok, **_errors(400, 401, 403, 404, 409, 413)},
    }
    if body is not None:
        op["requestBody"] = _body(body)
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
            "responses": {"101": {"description": "Switching to WebSocket"}, **_errors(400)},
        }
    },
    "/api/tokens/viewer": {
        "post": {
            "summary": "An anonymous viewer token",
            "responses": {
                "201": _json(
                    {"type": "object", "required": ["token"], "properties": {"token": _STR}},
                    "Token",
                )
            },
        }
    },
    "/api/rooms": {
        "post": _host_action(
            "Create a live room",
            _json(_ref("Room"), "Created"),
            {
                "type": "object",
                "required": ["title"],
                "properties": {
                    "title": _STR,
                    "cover_url": _STR,
                    "stream_url": _STR,
                    "planned_start_at": _TIME,
                },
            },
            status="201",
        )
    },
    "/api/rooms/{room_id}": {
        "parameters": _ROOM,
        "get": {
            "summary": "A room with its goods",
            "responses": {"200": _json(_ref("Room"), "The room"), **_errors(404)},
        },
    },
    "/api/rooms/{room_id}/start": {
        "parameters": _ROOM,
        "post": _host_action("Go live", _json(_ref("Room"), "Live")),
    },
    "/api/rooms/{room_id}/end": {
        "parameters": _ROOM,
        "post": _host_action("End the live", _json(_ref("Room"), "Ended")),
    },
    "/api/rooms/{room_id}/started_at": {
        "parameters": _ROOM,
        "put": _host_action(
            "Correct the actual start time (offset schedules follow)",
            _json({"type": "object"}, "Corrected"),
            {"type": "object", "required": ["started_at"], "properties": {"started_at": _TIME}},
        ),
    },
    "/api/rooms/{room_id}/goods": {
        "parameters": _ROOM,
        "post": _host_action(
            "Attach goods to the room",
            _json(
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
            _json(_ref("Published"), "Replayed"),
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
        "post": _host_action("Hide the current bubble", _json(_ref("Published"), "Published")),
    },
    "/api/rooms/{room_id}/schedules": {
        "parameters": _ROOM,
        "get": {
            "summary": "The room's scheduled pushes",
            "security": HOST,
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["schedules"],
                        "properties": {"schedules": {"type": "array", "items": _ref("Schedule")}},
                    },
                    "Schedules",
                ),
                **_errors(401, 403, 404),
            },
        },
        "post": _host_action(
            "Schedule a goods push at a time or an offset from the actual start",
            _json(_ref("Schedule"), "Scheduled"),
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
        "parameters": [*_ROOM, _path_id("schedule_id")],
        "patch": _host_action(
            "Reschedule (the old time never fires)",
            _json(_ref("Schedule"), "Rescheduled"),
            {"type": "object", "properties": _WHEN},
        ),
        "delete": _host_action(
            "Cancel (409 already_fired if it fired)", _json(_ref("Schedule"), "Cancelled")
        ),
    },
}
