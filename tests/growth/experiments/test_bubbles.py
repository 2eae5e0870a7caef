"""Live-bubble variant frames: one payload per variant per node, each viewer its variant."""

from __future__ import annotations

import orjson

from livecommerce.growth.experiments.bubbles import VariantFrames, variant_of, variant_push_body
from livecommerce.growth.experiments.bucketing import assign

EXPERIMENT = {
    "id": 7, "key": "bubble-title", "seed": "bubble-title", "weights": [0.5, 0.5],
    "coverage": 1.0, "namespace": None, "variants": [{"key": "a"}, {"key": "b"}],
}  # fmt: skip
BASE = {
    "type": "goods_push", "push_id": "p1", "show_seconds": 30,
    "goods": {"id": 1, "title": "Tea", "price_fen": 8800, "image": "https://i/1", "stock": 5},
}  # fmt: skip
CREATIVES = [{}, {"title": "Spring tea, 20% off", "price_display": "¥70.4", "show_seconds": 45}]


def test_each_variant_encoded_once_per_seq() -> None:
    """Delivering the same seq again (resume, gap fill) reuses the variant payloads."""
    cache = VariantFrames()
    payload = orjson.dumps({**variant_push_body(BASE, EXPERIMENT, CREATIVES), "seq": 3})
    first = cache.get(1, 3, payload)
    again = cache.get(1, 3, payload)
    assert first is not None
    assert again is first
    assert cache.encoded == 3  # a, b, and the control for viewers not included
    a, b, outside = (orjson.loads(f) for f in first.payloads)
    assert a["goods"]["title"] == "Tea"
    assert a["experiment"] == {"id": 7, "key": "bubble-title", "variant": "a", "included": True}
    assert outside["experiment"] == {**a["experiment"], "included": False}
    assert outside["goods"] == a["goods"]
    assert (b["goods"]["title"], b["goods"]["price_display"], b["show_seconds"]) == (
        "Spring tea, 20% off",
        "¥70.4",
        45,
    )
    assert "creatives" not in b["experiment"]
    assert a["seq"] == b["seq"] == 3


def test_plain_frames_are_left_alone() -> None:
    """A push without an experiment is not parsed into variants."""
    assert VariantFrames().get(1, 1, orjson.dumps(BASE)) is None


def test_viewer_variant_matches_bucketing_and_is_stable() -> None:
    """A viewer's bubble variant is their hash-v2 assignment, the same every time."""
    exp = variant_push_body(BASE, EXPERIMENT, CREATIVES)["experiment"]
    for i in range(200):
        who = f"user:{i}"
        assert variant_of(exp, who) == assign(who, "bubble-title", [0.5, 0.5])
        assert variant_of(exp, who) == variant_of(exp, who)


def test_not_included_viewers_see_the_control() -> None:
    """With coverage 0 every viewer gets variant 0 (the control creative)."""
    exp = variant_push_body(BASE, {**EXPERIMENT, "coverage": 0.0}, CREATIVES)["experiment"]
    assert {variant_of(exp, f"v{i}") for i in range(50)} == {0}


def test_a_reused_seq_is_not_served_from_the_cache() -> None:
    """After a stream reset the same (room, seq) may carry another variant push."""
    cache = VariantFrames()
    one = orjson.dumps({"seq": 3, **variant_push_body(BASE, EXPERIMENT, CREATIVES)})
    other_creatives = [{}, {"title": "Another title"}]
    two = orjson.dumps({"seq": 3, **variant_push_body(BASE, EXPERIMENT, other_creatives)})
    first = cache.get(1, 3, one)
    second = cache.get(1, 3, two)
    assert first is not None
    assert second is not None
    assert orjson.loads(second.payloads[1])["goods"]["title"] == "Another title"
    assert cache.get(1, 3, two) is second
