"""Deterministic bucketing, bit-for-bit compatible with GrowthBook's SDKs.

A port of GrowthBook's ``hash``, ``getBucketRanges``, ``chooseVariation``, ``inNamespace`` and
``getEqualWeights`` (growthbook/growthbook ``packages/sdk-js/src/util.ts``, MIT). The same
functions live in ``clients/miniprogram/experiments.js``; both pass GrowthBook's published SDK
test vectors (``tests/growth/experiments/growthbook_cases.json``), so the server, the
mini-program and any GrowthBook SDK put a user in the same variant offline.

Hash version 2 (what experiments here use): ``n = fnv1a32(str(fnv1a32(seed + value)))``,
bucket ``(n % 10000) / 10000`` in [0, 1). Version 1 (``fnv1a32(value + seed) % 1000 / 1000``)
is kept only because GrowthBook's namespaces still use it.

FNV-1a runs over UTF-16 code units, as JavaScript's ``charCodeAt`` does, so non-ASCII ids
hash the same on both sides.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence

FNV32_OFFSET = 0x811C9DC5
FNV32_PRIME = 0x01000193
_MASK32 = 0xFFFFFFFF
_UTF16_NATIVE = "utf-16-le" if sys.byteorder == "little" else "utf-16-be"

Range = tuple[float, float]


def fnv1a32(text: str) -> int:
    """FNV-1a 32-bit over the UTF-16 code units of ``text`` (an unsigned 32-bit int)."""
    units: bytes | array[int]
    if text.isascii():
        units = text.encode("ascii")  # one code unit per byte: the fast path (openids)
    else:
        units = array("H", text.encode(_UTF16_NATIVE, "surrogatepass"))
    h = FNV32_OFFSET
    for u in units:
        h = ((h ^ u) * FNV32_PRIME) & _MASK32
    return h


def hash_value(seed: str, value: str, version: int = 2) -> float | None:
    """GrowthBook's ``hash(seed, value, version)``: a bucket in [0, 1), None for unknown versions.

    Version 2 has 10,000 buckets (4 decimals), version 1 has 1,000.
    """
    if version == 2:
        return (fnv1a32(str(fnv1a32(seed + value))) % 10000) / 10000
    if version == 1:
        return (fnv1a32(value + seed) % 1000) / 1000
    return None


def equal_weights(n: int) -> list[float]:
    """``n`` equal weights summing to 1 (empty for ``n <= 0``)."""
    return [1 / n] * n if n > 0 else []


def bucket_ranges(
    n_variations: int, coverage: float = 1.0, weights: Sequence[float] | None = None
) -> list[Range]:
    """GrowthBook's ``getBucketRanges``: one ``[start, end)`` per variant.

    Variant ``i`` starts at the sum of the earlier weights and covers ``coverage * weight``
    of it, so lowering coverage drops users without moving the ones that stay. Coverage is
    clamped to [0, 1]; weights of the wrong length or not summing to 1 ± 0.01 fall back to
    equal weights, exactly as the SDKs do.
    """
    coverage = min(1.0, max(0.0, coverage))
    equal = equal_weights(n_variations)
    chosen: Sequence[float] = weights if weights is not None else equal
    if len(chosen) != n_variations:
        chosen = equal
    total = sum(chosen)
    if total < 0.99 or total > 1.01:
        chosen = equal
    ranges: list[Range] = []
    cumulative = 0.0
    for w in chosen:
        start = cumulative
        cumulative += w
        ranges.append((start, start + coverage * w))
    return ranges


def in_range(n: float, r: Range) -> bool:
    """``start <= n < end``."""
    return r[0] <= n < r[1]


def choose_variation(n: float, ranges: Sequence[Range]) -> int:
    """The index of the first range holding ``n``, or -1 (not in the experiment)."""
    for i, r in enumerate(ranges):
        if in_range(n, r):
            return i
    return -1


def in_namespace(hash_id: str, namespace: tuple[str, float, float]) -> bool:
    """GrowthBook's ``inNamespace``: ``hash("__" + id, user, 1)`` in ``[start, end)``.

    Experiments in the same namespace id with disjoint ranges never share a user.
    """
    n = hash_value("__" + namespace[0], hash_id, 1)
    return n is not None and namespace[1] <= n < namespace[2]


def assign(
    user: str,
    seed: str,
    weights: Sequence[float],
    coverage: float = 1.0,
    namespace: tuple[str, float, float] | None = None,
) -> int:
    """The variant index for ``user`` in an experiment (hash v2), or -1 when not included.

    Args:
        user: the hash attribute (here the user's openid).
        seed: the experiment's hash seed (defaults to its key).
        weights: one weight per variant, summing to 1.
        coverage: the share of users included, 0-1.
        namespace: optional ``(id, start, end)``; users outside it get -1.
    """
    if namespace is not None and not in_namespace(user, namespace):
        return -1
    n = hash_value(seed, user, 2)
    assert n is not None
    return choose_variation(n, bucket_ranges(len(weights), coverage, weights))
