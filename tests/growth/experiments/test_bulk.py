"""Vectorised bucketing equals the scalar GrowthBook port for every id, weight, coverage and
namespace (bulk.assign_many is what a node uses to bucket a whole room)."""

from __future__ import annotations

import random

from livecommerce.growth.experiments.bucketing import assign
from livecommerce.growth.experiments.bulk import assign_many


def test_assign_many_equals_assign() -> None:
    rng = random.Random(17)
    ids = [f"o{rng.getrandbits(64):x}-{i}" for i in range(3000)] + ["", "a", "anon-" + "x" * 40]
    cases = [
        ("bubble-title", [0.5, 0.5], 1.0, None),
        ("s", [0.1, 0.3, 0.6], 0.9, ("bubbles", 0.0, 0.7)),
        ("seed with spaces", [0.25] * 4, 0.35, ("ns", 0.4, 1.0)),
        ("", [1.0], 1.0, None),
    ]
    for seed, weights, coverage, ns in cases:
        assert assign_many(ids, seed, weights, coverage, ns) == [
            assign(u, seed, weights, coverage, ns) for u in ids
        ], (seed, weights, coverage, ns)


def test_non_ascii_and_small_batches_fall_back() -> None:
    ids = [f"用户{i}" for i in range(100)] + [f"u{i}" for i in range(100)]
    assert assign_many(ids, "k", [0.5, 0.5]) == [assign(u, "k", [0.5, 0.5]) for u in ids]
    assert assign_many(ids[-3:], "k", [0.5, 0.5]) == [assign(u, "k", [0.5, 0.5]) for u in ids[-3:]]
