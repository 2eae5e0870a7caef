"""Live-bubble variants: one published payload, one encoded frame per variant per node.

A variant push (issue 17) is published once (one seq) as a normal ``goods_push`` body showing the
control creative, plus an ``experiment`` object (:func:`variant_push_body`)::

    {"id", "key", "seed", "weights", "coverage", "namespace": [id, start, end] | null,
     "sticky", "variants": [variant keys], "creatives": [{...}, ...]}

Each creative (one per variant, in the experiment's variant order) overrides some of
``title``, ``image``, ``price_display`` (goods fields) and ``show_seconds``.

On a node, :class:`VariantFrames` turns that payload into one payload and one WebSocket frame per
variant the first time it sees the seq (cached by room and seq, so at most once per variant per
node); :func:`choose` picks a viewer's variant. What a viewer receives is the body with its
variant's creative applied and ``"experiment": {"id", "key", "variant"}`` (no creatives, no
weights) plus ``"included"``: docs/protocol.md. A viewer outside the experiment (coverage,
namespace; a host) gets the control creative with the control's key and ``"included": false``,
so its client records no exposure.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from livecommerce.growth.experiments import service
from livecommerce.growth.experiments.bucketing import assign
from livecommerce.realtime.protocol import ws_text_frame

CREATIVE_FIELDS = ("title", "image", "price_display")
MARKER = b'"experiment":{"id":'  # in a published variant push, never in another frame
CACHE_SIZE = 64  # recent variant pushes kept per node (resumes replay recent history)

DefinitionKey = tuple[Any, ...]


def variant_push_body(
    base: dict[str, Any], experiment: Mapping[str, Any], creatives: list[dict[str, Any]]
) -> dict[str, Any]:
    """The body to publish: ``base`` (a goods_push body) plus the experiment and creatives.

    ``experiment`` is an experiment dict (service.row_to_dict); ``creatives`` has one dict per
    variant, in its variant order. Raises ValueError when the counts differ.
    """
    if len(creatives) != len(experiment["variants"]):
        raise ValueError("one creative per variant")
    ns = experiment["namespace"]
    return {
        **base,
        "experiment": {
            "id": experiment["id"],
            "key": experiment["key"],
            "seed": experiment["seed"],
            "weights": list(experiment["weights"]),
            "coverage": experiment["coverage"],
            "namespace": [ns["id"], ns["start"], ns["end"]] if ns else None,
            "sticky": bool(experiment.get("sticky", True)),
            "variants": [v["key"] for v in experiment["variants"]],
            "creatives": creatives,
        },
    }


async def running_experiments(
    conn: asyncpg.Connection, rows: list[asyncpg.Record]
) -> dict[int, dict[str, Any]]:
    """The running experiments (inside their window) named by schedule ``rows``
    (``experiment_id``), by id: what a scheduled variant push uses when it fires. An experiment
    not running then is absent: that push shows the control creative alone."""
    ids = sorted({r["experiment_id"] for r in rows if r["experiment_id"] is not None})
    if not ids:
        return {}
    return {e["id"]: e for e in await service.running(conn) if e["id"] in ids}


def definition_key(definition: Mapping[str, Any]) -> DefinitionKey:
    """What decides every viewer's variant: experiment id, seed, weights, coverage, namespace,
    stickiness and the number of variants. Two pushes with the same key bucket alike."""
    ns = definition.get("namespace")
    return (
        definition["id"],
        definition["seed"],
        tuple(definition["weights"]),
        definition["coverage"],
        tuple(ns) if ns else None,
        bool(definition.get("sticky", True)),
        len(definition["creatives"]),
    )


def hashed_variant(definition: Mapping[str, Any], hash_id: str) -> int:
    """GrowthBook hash-v2 bucketing of ``hash_id`` for a push's ``experiment`` object: the
    variant index, or -1 when not included (coverage, namespace)."""
    ns = definition.get("namespace")
    return assign(
        hash_id,
        definition["seed"],
        definition["weights"],
        definition["coverage"],
        (ns[0], ns[1], ns[2]) if ns else None,
    )


def choose(definition: Mapping[str, Any], hash_id: str | None, stored: int | None = None) -> int:
    """The viewer's variant index: ``stored`` (its sticky assignment) when the experiment is
    sticky, else the hash of ``hash_id``; -1 when not included or without a hash id (shown the
    control creative)."""
    n = len(definition["creatives"])
    if stored is not None and definition.get("sticky", True) and 0 <= stored < n:
        return stored
    if hash_id is None:
        return -1
    return hashed_variant(definition, hash_id)


def variant_of(definition: Mapping[str, Any], hash_id: str) -> int:
    """The creative index a viewer with ``hash_id`` is shown (0, the control, when not included)."""
    return max(0, choose(definition, hash_id))


def _variant_body(body: Mapping[str, Any], exp: Mapping[str, Any], i: int) -> dict[str, Any]:
    """The frame body of creative ``i`` (``i == -1``: the control, for viewers not included)."""
    creative = exp["creatives"][max(0, i)]
    goods = dict(body.get("goods") or {})
    for name in CREATIVE_FIELDS:
        if name in creative:
            goods[name] = creative[name]
    out = {k: v for k, v in body.items() if k != "experiment"}
    out["goods"] = goods
    if "show_seconds" in creative:
        out["show_seconds"] = creative["show_seconds"]
    out["experiment"] = {
        "id": exp["id"],
        "key": exp["key"],
        "variant": exp["variants"][max(0, i)],
        "included": i >= 0,
    }
    return out


def variant_bubble(body: Mapping[str, Any], i: int) -> dict[str, Any]:
    """A decoded variant push (e.g. a welcome's ``bubble``) as variant ``i`` sees it; other
    bodies unchanged."""
    exp = body.get("experiment")
    if not isinstance(exp, dict) or "creatives" not in exp:
        return dict(body)
    return _variant_body(body, exp, i)


@dataclass(slots=True)
class Entry:
    """One variant push on this node: its experiment object, its definition key, and per
    creative index ``i`` the payload and WebSocket frame (``frames[-1]`` / ``payloads[-1]``
    are the control shown to viewers not included)."""

    definition: dict[str, Any]
    key: DefinitionKey
    payloads: list[bytes]
    frames: list[bytes]
    source: bytes = b""  # the published payload (a seq reused after a stream reset differs)


class VariantFrames:
    """Per-node cache: (room, seq) → :class:`Entry` (encoded once per variant)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._cache: OrderedDict[tuple[int, int], Entry] = OrderedDict()
        self._size = size
        self.encoded = 0  # variant payloads built (for tests and metrics)

    def peek(self, room_id: int, seq: int) -> Entry | None:
        """The cached entry of a seq already seen, else None."""
        return self._cache.get((room_id, seq))

    def get(self, room_id: int, seq: int, payload: bytes) -> Entry | None:
        """The entry of a variant push, or None for a plain frame. A cached entry is reused only
        for the very same payload (after a stream reset a seq may name another frame)."""
        key = (room_id, seq)
        hit = self._cache.get(key)
        if hit is not None and hit.source == payload:
            self._cache.move_to_end(key)
            return hit
        if MARKER not in payload:
            return None
        body = orjson.loads(payload)
        exp = body.get("experiment")
        if not isinstance(exp, dict) or not isinstance(exp.get("creatives"), list):
            return None
        n = len(exp["creatives"])
        # Index n is the control shown to viewers not included ([-1] in Python).
        payloads = [orjson.dumps(_variant_body(body, exp, i)) for i in [*range(n), -1]]
        self.encoded += len(payloads)
        frames = [ws_text_frame(p) for p in payloads]
        entry = Entry(exp, definition_key(exp), payloads, frames, bytes(payload))
        self._cache[key] = entry
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return entry
