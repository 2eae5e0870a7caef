"""A goods push that names an experiment: the request fields and their checks (no aiohttp).

``POST /api/rooms/{id}/push`` and ``POST /api/rooms/{id}/schedules`` take the same two optional
fields: ``experiment_id`` and ``variants`` (one :class:`VariantCreative` per variant of the
experiment, each variant once, in any order). :func:`resolve` checks them against the host's
experiment and answers the experiment and the creatives in its variant order, ready for
:func:`bubbles.variant_push_body`.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import asyncpg
import msgspec
from msgspec import Meta

from livecommerce.api.models import Body
from livecommerce.api.types import NO_NUL, NON_BLANK, NonBlankTitle, ShowSeconds, Url
from livecommerce.errors import Conflict, ValidationError
from livecommerce.growth.experiments import service
from livecommerce.growth.experiments.bubbles import CREATIVE_FIELDS

MAX_VARIANTS = 20


class VariantCreative(Body):
    """One variant's creative; an absent field shows the goods' own (the push's show time)."""

    variant: Annotated[
        str, Meta(min_length=1, max_length=64, description="The experiment's variant key"), NO_NUL
    ]
    title: Annotated[NonBlankTitle, Meta(description="Not blank")] | None = None
    image: Url | None = None
    price_display: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=40,
                pattern=NON_BLANK,
                description="Not blank; shown instead of the price, e.g. '¥70.4 today' "
                "(price_fen is what is charged)",
            ),
        ]
        | None
    ) = None
    show_seconds: ShowSeconds | None = None


Variants = Annotated[
    list[VariantCreative],
    Meta(
        min_length=2,
        max_length=MAX_VARIANTS,
        description="With experiment_id: one creative per variant of the experiment",
    ),
]


def check_pair(experiment_id: int | None, variants: list[VariantCreative] | None) -> None:
    """400 unless ``experiment_id`` and ``variants`` come together (or neither)."""
    if (experiment_id is None) != (variants is None):
        field = "variants" if variants is None else "experiment_id"
        raise ValidationError(field, "experiment_id and variants go together")


def creatives_of(variants: list[VariantCreative]) -> list[dict[str, Any]]:
    """The creatives as plain dicts (only the fields sent), in the order given."""
    out = []
    for v in variants:
        c: dict[str, Any] = {"variant": v.variant}
        for name in (*CREATIVE_FIELDS, "show_seconds"):
            value = getattr(v, name)
            if value is not None:
                c[name] = value
        out.append(c)
    return out


def ordered(exp: dict[str, Any], creatives: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The creatives in the experiment's variant order, without their ``variant`` key.

    Raises:
        ValidationError: on ``variants`` unless each of the experiment's variants has exactly
            one creative.
    """
    keys = [v["key"] for v in exp["variants"]]
    sent = [c["variant"] for c in creatives]
    if len(set(sent)) != len(sent) or sorted(sent) != sorted(keys):
        raise ValidationError(
            "variants", f"give one creative for each variant of the experiment: {keys}"
        )
    by_key = {c["variant"]: {k: v for k, v in c.items() if k != "variant"} for c in creatives}
    return [by_key[k] for k in keys]


async def owned(
    conn: asyncpg.Connection | asyncpg.Pool, host_id: int, exp_id: int
) -> dict[str, Any]:
    """The host's experiment (service.row_to_dict). Raises ValidationError on
    ``experiment_id`` when there is none (another host's answers alike)."""
    row = await conn.fetchrow(
        f"SELECT {service.COLUMNS} FROM experiments WHERE id = $1 AND host_id = $2",
        exp_id,
        host_id,
    )
    if row is None:
        raise ValidationError("experiment_id", "no such experiment")
    return service.row_to_dict(row)


async def resolve(
    conn: asyncpg.Connection | asyncpg.Pool,
    host_id: int,
    exp_id: int,
    creatives: list[dict[str, Any]],
    *,
    allow_draft: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(The host's experiment, the creatives in its variant order) for a push.

    Raises:
        ValidationError: ``experiment_id`` (no such experiment of this host), ``variants``
            (not exactly one creative per variant).
        Conflict: ``experiment_not_running`` (a draft unless ``allow_draft``, stopped, or
            outside its window).
    """
    exp = await owned(conn, host_id, exp_id)
    running = await service.running(conn, only=exp_id)
    if not running and not (allow_draft and exp["state"] == "draft"):
        raise Conflict(
            f"the experiment is not running (it is {exp['state']})",
            code="experiment_not_running",
        )
    return exp, ordered(exp, creatives)


def request_digest(exp_id: int | None, creatives: list[dict[str, Any]] | None) -> str:
    """A short digest of the experiment part of a push (for idempotency-key reuse checks)."""
    if exp_id is None:
        return ""
    raw = msgspec.json.encode([exp_id, creatives])
    return ":" + hashlib.sha256(raw).hexdigest()[:16]
