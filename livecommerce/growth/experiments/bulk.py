""":func:`bucketing.assign` for many users at once, vectorised with NumPy (same results, bit
for bit; ~15x faster for thousands of ids).

Used when a node decides the variant of every viewer of a room for a bubble experiment
(realtime/variants.py): 10,000 viewers take a few ms instead of ~50-100 ms of pure Python.
FNV-1a runs column by column over the ids' bytes (ASCII ids: one byte per UTF-16 code unit,
exactly what :func:`bucketing.fnv1a32` hashes); a non-ASCII id is hashed by the scalar
function. 32-bit products are taken in uint64 (``(h ^ u) * prime < 2**57``) and masked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from livecommerce.growth.experiments.bucketing import (
    FNV32_OFFSET,
    FNV32_PRIME,
    assign,
    bucket_ranges,
)

MIN_BATCH = 32  # below this the scalar function is as fast
_MASK = 0xFFFFFFFF


def _fnv_state(text: bytes, h: int = FNV32_OFFSET) -> int:
    for u in text:
        h = ((h ^ u) * FNV32_PRIME) & _MASK
    return h


def _fnv_columns(np: Any, h: Any, data: Any, lengths: Any) -> Any:
    """Continue FNV-1a states ``h`` over each row of ``data`` up to its length."""
    prime, mask = np.uint64(FNV32_PRIME), np.uint64(_MASK)
    for j in range(int(lengths.max()) if len(lengths) else 0):
        live = lengths > j
        h = np.where(live, ((h ^ data[:, j]) * prime) & mask, h)
    return h


def _decimal_fnv(np: Any, h: Any) -> Any:
    """FNV-1a of ``str(h)`` for every uint32 in ``h`` (hash v2's second round)."""
    digits = np.ones(len(h), dtype=np.int64)
    for k in range(1, 10):
        digits += h >= 10**k
    out = np.full(len(h), FNV32_OFFSET, dtype=np.uint64)
    prime, mask, ten = np.uint64(FNV32_PRIME), np.uint64(_MASK), np.uint64(10)
    for pos in range(10):
        live = digits > pos
        power = np.where(live, digits - 1 - pos, 0).astype(np.uint64)
        d = (h // ten**power) % ten + np.uint64(48)
        out = np.where(live, ((out ^ d) * prime) & mask, out)
    return out


def assign_many(
    users: Sequence[str],
    seed: str,
    weights: Sequence[float],
    coverage: float = 1.0,
    namespace: tuple[str, float, float] | None = None,
) -> list[int]:
    """``[assign(u, seed, weights, coverage, namespace) for u in users]``, vectorised."""
    ascii_ids = [u.encode() for u in users if u.isascii()]
    if len(users) < MIN_BATCH or len(ascii_ids) != len(users):
        return [assign(u, seed, weights, coverage, namespace) for u in users]
    n = len(ascii_ids)
    width = max(len(b) for b in ascii_ids) or 1
    data = (
        np.frombuffer(b"".join(b.ljust(width, b"\0") for b in ascii_ids), dtype=np.uint8)
        .reshape(n, width)
        .astype(np.uint64)
    )
    lengths = np.fromiter((len(b) for b in ascii_ids), dtype=np.int64, count=n)
    # Hash v2: fnv(str(fnv(seed + id))) % 10000 / 10000.
    first = _fnv_columns(np, np.full(n, _fnv_state(seed.encode()), dtype=np.uint64), data, lengths)
    bucket = (_decimal_fnv(np, first) % np.uint64(10000)).astype(np.float64) / 10000
    out = np.full(n, -1, dtype=np.int64)
    for i, (start, end) in enumerate(bucket_ranges(len(weights), coverage, weights)):
        out = np.where((out < 0) & (bucket >= start) & (bucket < end), i, out)
    if namespace is not None:
        # Hash v1 of the namespace: fnv(id + "__" + namespace id) % 1000 / 1000 in [start, end).
        h = _fnv_columns(np, np.full(n, FNV32_OFFSET, dtype=np.uint64), data, lengths)
        suffix = ("__" + namespace[0]).encode()
        if not suffix.isascii():
            return [assign(u, seed, weights, coverage, namespace) for u in users]
        prime, mask = np.uint64(FNV32_PRIME), np.uint64(_MASK)
        for u in suffix:
            h = ((h ^ np.uint64(u)) * prime) & mask
        ns = (h % np.uint64(1000)).astype(np.float64) / 1000
        out = np.where((ns >= namespace[1]) & (ns < namespace[2]), out, -1)
    return [int(x) for x in out]
