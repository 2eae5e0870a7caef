"""Live-bubble variants: one published payload, one encoded frame per variant per node.

A building block for issue 17's bubble experiments; the realtime hub does not call it yet
(docs/experiments.md, "Not built yet"). A variant push is published once (one seq) as a normal
``goods_push`` body showing the control creative, plus an ``experiment`` object:
``{"id", "key", "seed", "weights", "coverage", "namespace", "creatives": [{...}, ...]}``.
Each creative overrides some of ``title``, ``image``, ``price_display``, ``show_seconds``.

On a node, :class:`VariantFrames` turns that payload into one payload per variant the first
time it sees it (cached by room and seq, so at most once per variant per node), and
:func:`variant_of` picks a viewer's variant (cached per viewer and experiment by the caller),
so a fan-out writes prepared bytes with no per-viewer encoding. A viewer outside the
experiment (coverage, namespace) gets the control.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import orjson

from livecommerce.growth.experiments.bucketing import assign

CREATIVE_FIELDS = ("title", "image", "price_display")
MARKER = b'"experiment":'
CACHE_SIZE = 64  # recent variant pushes kept per node (resumes replay recent history)


def variant_push_body(
    base: dict[str, Any], experiment: dict[str, Any], creatives: list[dict[str, Any]]
) -> dict[str, Any]:
    """The body to publish: ``base`` (a goods_push body) plus the experiment and creatives.

    ``experiment`` is an experiment dict (service.row_to_dict); ``creatives`` has one dict per
    variant. Raises ValueError when the counts differ.
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
            "weights": experiment["weights"],
            "coverage": experiment["coverage"],
            "namespace": [ns["id"], ns["start"], ns["end"]] if ns else None,
            "variants": [v["key"] for v in experiment["variants"]],
            "creatives": creatives,
        },
    }


def variant_of(definition: dict[str, Any], hash_id: str) -> int:
    """The viewer's variant index for a push's ``experiment`` object (0 when not included)."""
    ns = definition["namespace"]
    v = assign(
        hash_id,
        definition["seed"],
        definition["weights"],
        definition["coverage"],
        (ns[0], ns[1], ns[2]) if ns else None,
    )
    return v if v >= 0 else 0


def _variant_payload(body: dict[str, Any], exp: dict[str, Any], i: int) -> bytes:
    creative = exp["creatives"][i]
    goods = dict(body.get("goods") or {})
    for name in CREATIVE_FIELDS:
        if name in creative:
            goods[name] = creative[name]
    out = {k: v for k, v in body.items() if k != "experiment"}
    out["goods"] = goods
    if "show_seconds" in creative:
        out["show_seconds"] = creative["show_seconds"]
    out["experiment"] = {"id": exp["id"], "key": exp["key"], "variant": exp["variants"][i]}
    return orjson.dumps(out)


class VariantFrames:
    """Per-node cache: (room, seq) → (the push's experiment object, one payload per variant)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._cache: OrderedDict[tuple[int, int], tuple[dict[str, Any], list[bytes]]] = (
            OrderedDict()
        )
        self._size = size
        self.encoded = 0  # variant payloads built (for tests and metrics)

    def get(
        self, room_id: int, seq: int, payload: bytes
    ) -> tuple[dict[str, Any], list[bytes]] | None:
        """The experiment object and per-variant payloads, or None for a plain frame."""
        key = (room_id, seq)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        if MARKER not in payload:
            return None
        body = orjson.loads(payload)
        exp = body.get("experiment")
        if not isinstance(exp, dict) or "creatives" not in exp:
            return None
        frames = [_variant_payload(body, exp, i) for i in range(len(exp["creatives"]))]
        self.encoded += len(frames)
        entry = (exp, frames)
        self._cache[key] = entry
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return entry
