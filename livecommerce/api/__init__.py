"""The typed HTTP contract (msgspec models -> validation, serialization, OpenAPI)."""
