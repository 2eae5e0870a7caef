"""The error of the embedded backends: :class:`EmbeddedError`."""

from __future__ import annotations


class EmbeddedError(Exception):
    """The embedded backends could not be set up; the message says why in one line."""
