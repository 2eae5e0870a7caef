"""Building blocks of the OpenAPI 3.1 document, shared by every component's paths module."""

from __future__ import annotations

from typing import Any

JSON = "application/json"
MAX_ID = 2**63 - 1
USER: list[dict[str, list[str]]] = [{"userToken": []}]
HOST: list[dict[str, list[str]]] = [{"hostToken": []}]
TIME = {"type": "string", "format": "date-time"}
TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}


def ref(name: str) -> dict[str, str]:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_of(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A JSON response with this schema."""
    return {"description": description, "content": {JSON: {"schema": schema}}}


def errors(*statuses: int) -> dict[str, Any]:
    """The shared error responses (uniform error body) for these statuses."""
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}


def body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    """A JSON request body."""
    return {"required": required, "content": {JSON: {"schema": schema}}}


def path_id(name: str = "id", what: str = "resource") -> dict[str, Any]:
    """A positive bigint path parameter."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"The {what} id",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    }


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """An optional query parameter."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }
