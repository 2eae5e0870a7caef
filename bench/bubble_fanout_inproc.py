"""What a two-variant push costs a node in the fan-out itself, without sockets or a loader:
``Hub.deliver`` of a plain vs a two-variant ``goods_push`` to 10,000 local viewers whose
transports only count bytes, alternating, many rounds (issue 17; the end-to-end comparison is
bench/bubble_fanout.py, whose last-viewer figures are dominated by the kernel and the loader).

Also times the first variant push of an experiment definition (the room's plan: every viewer's
variant decided at once, realtime/variants.py) and each viewer being a user with an openid
(bucketed like REST) or an anonymous viewer.

    .venv/bin/python bench/bubble_fanout_inproc.py [--viewers 10000] [--rounds 400] [--json FILE]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import orjson
from fanout_common import save, table

from livecommerce.growth.experiments.bubbles import variant_push_body
from livecommerce.metrics import Metrics
from livecommerce.realtime.hub import Hub, LocalRoom
from livecommerce.realtime.variants import Bucketing

BASE = {
    "type": "goods_push", "push_id": "b1", "show_seconds": 30,
    "goods": {"id": 1, "title": "Tea", "price_fen": 990, "image": "https://i/1.jpg", "stock": 5},
}  # fmt: skip
EXPERIMENT = {
    "id": 1, "key": "bench-bubble", "seed": "bench-bubble", "weights": [0.5, 0.5],
    "coverage": 1.0, "namespace": None, "sticky": True,
    "variants": [{"key": "control"}, {"key": "promo"}],
}  # fmt: skip
CREATIVES: list[dict[str, Any]] = [
    {},
    {"title": "Spring tea, 20% off today", "price_display": "¥7.9", "show_seconds": 45},
]


class Transport:
    """Counts what would be sent (the kernel's part is not what we measure here)."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = 0

    def write(self, data: bytes) -> None:
        self.sent += len(data)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


class Viewer:
    __slots__ = ("ab", "identity", "room_id", "since", "transport")

    def __init__(self, i: int) -> None:
        self.transport = Transport()
        self.room_id = 1
        self.since = 0
        if i % 2:
            self.identity, self.ab = f"user:{i}", Bucketing(f"oAbCdEfGhIjKlMnOp{i:08d}", {})
        else:
            self.identity, self.ab = f"viewer:anon-{i:016d}", None

    def write(self, data: bytes) -> None:
        self.transport.write(data)


def quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * len(s) + 0.5) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--viewers", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=400)
    ap.add_argument("--json")
    args = ap.parse_args()
    hub = Hub(Metrics(), 1 << 30)
    room = hub.rooms[1] = LocalRoom(1)
    for i in range(args.viewers):
        room.viewers.add(Viewer(i))  # type: ignore[arg-type]
    bodies = [BASE, variant_push_body(BASE, EXPERIMENT, CREATIVES)]
    times: list[list[float]] = [[], []]
    first_variant = 0.0
    for seq in range(1, args.rounds + 1):
        kind = seq % 2
        payload = orjson.dumps({"seq": seq, "ts": 0, **bodies[kind]})
        started = time.perf_counter()
        hub.deliver(1, seq, payload)
        ms = (time.perf_counter() - started) * 1000
        if kind and not first_variant:
            first_variant = ms
            continue
        times[kind].append(ms)
    figures = {
        name: {
            "p50": round(statistics.median(t), 3),
            "p99": round(quantile(t, 0.99), 3),
            "mean": round(statistics.fmean(t), 3),
        }
        for name, t in (("plain", times[0]), ("variant", times[1]))
    }
    figures["variant"]["first_push_with_plan"] = round(first_variant, 3)
    ratio = figures["variant"]["p99"] / figures["plain"]["p99"]
    md = table(
        ["push", "rounds", "deliver p50 ms", "deliver p99 ms", "mean ms"],
        [
            [name, len(t), f["p50"], f["p99"], f["mean"]]
            for (name, f), t in zip(figures.items(), times, strict=True)
        ],
    )
    md += f"\n\nfirst variant push (plan for {args.viewers:,} viewers): {first_variant:.1f} ms; "
    md += f"variant p99 / plain p99 = {ratio:.2f}; frames encoded: {hub.bubbles.encoded}"
    print(md)
    save(
        "bubble-fanout-inproc",
        {"viewers": args.viewers, "rounds": args.rounds, "figures_ms": figures,
         "p99_ratio": round(ratio, 3), "table_md": md},
        args.json,
    )  # fmt: skip


if __name__ == "__main__":
    main()
