"""The three bases of the typed contract's msgspec models, free of any app import so that a
service module can define a request model (e.g. ``growth/experiments/bubble_push.py``) without
importing the HTTP layer. :mod:`livecommerce.api.contract` re-exports them."""

from __future__ import annotations

import msgspec


class Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of request bodies: unknown fields are refused (400 naming the field)."""


class Query(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of query strings: values arrive as text and are converted to the field types;
    empty values count as absent; unknown parameters are refused."""


class Model(msgspec.Struct, kw_only=True):
    """Base of response models (extra keys of a service's dict are dropped, never sent)."""
