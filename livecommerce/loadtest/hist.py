"""A small HDR-style histogram: log-bucketed, 1/64 relative precision, mergeable across processes.

Values are recorded in microseconds; a bucket is (magnitude, sub-bucket) with 64 sub-buckets per
power of two, so any reported percentile is within ~1.6 % of the true value (like HdrHistogram
with two significant digits). Counts live in a plain dict so a worker can ship them to the
coordinator as JSON-able data.
"""

from __future__ import annotations

SUB_BITS = 6
SUB = 1 << SUB_BITS


def _bucket(us: int) -> int:
    if us < SUB:
        return us
    shift = us.bit_length() - SUB_BITS - 1
    return ((shift + 1) << SUB_BITS) + ((us >> shift) - SUB)


def _bucket_high(key: int) -> int:
    """The largest value (µs) that falls into bucket ``key``."""
    if key < SUB:
        return key
    shift = (key >> SUB_BITS) - 1
    return (((key & (SUB - 1)) + SUB + 1) << shift) - 1


class Histogram:
    """Counts of latencies; ``record`` takes milliseconds, percentiles come back in milliseconds."""

    __slots__ = ("count", "counts", "max_us", "total_us")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.max_us = 0
        self.total_us = 0

    def record(self, ms: float) -> None:
        us = int(ms * 1000.0) if ms > 0 else 0
        key = _bucket(us)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.count += 1
        self.total_us += us
        if us > self.max_us:
            self.max_us = us

    def merge(self, other: Histogram) -> None:
        for key, n in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + n
        self.count += other.count
        self.total_us += other.total_us
        self.max_us = max(self.max_us, other.max_us)

    def percentile(self, pct: float) -> float:
        """The value (ms) at or below which ``pct`` percent of the recorded values lie."""
        if self.count == 0:
            return 0.0
        rank = max(1, round(pct / 100.0 * self.count + 0.4999))
        seen = 0
        for key in sorted(self.counts):
            seen += self.counts[key]
            if seen >= rank:
                return min(_bucket_high(key), self.max_us) / 1000.0
        return self.max_us / 1000.0

    @property
    def mean(self) -> float:
        return self.total_us / self.count / 1000.0 if self.count else 0.0

    def summary(self, pcts: tuple[float, ...] = (50, 90, 99, 99.9)) -> dict[str, float]:
        out = {_pname(p): round(self.percentile(p), 3) for p in pcts}
        out["max"] = round(self.max_us / 1000.0, 3)
        return out

    def to_dict(self) -> dict[str, object]:
        return {
            "counts": {str(k): v for k, v in self.counts.items()},
            "max_us": self.max_us,
            "total_us": self.total_us,
            "count": self.count,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Histogram:
        h = cls()
        counts = data["counts"]
        assert isinstance(counts, dict)
        h.counts = {int(k): int(v) for k, v in counts.items()}
        h.max_us = int(str(data["max_us"]))
        h.total_us = int(str(data["total_us"]))
        h.count = int(str(data["count"]))
        return h

    def buckets_ms(self) -> list[tuple[float, int]]:
        """(upper bound in ms, count) per non-empty bucket, ascending (for plots)."""
        return [(_bucket_high(k) / 1000.0, self.counts[k]) for k in sorted(self.counts)]


def _pname(p: float) -> str:
    return "p" + (str(int(p)) if float(p).is_integer() else str(p).replace(".", ""))
