"""The one error of loading settings."""

from __future__ import annotations


class ConfigError(Exception):
    """A setting is unknown, mistyped or missing; the message is one line naming it."""
