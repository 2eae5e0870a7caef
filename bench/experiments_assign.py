"""Micro-benchmark: experiment assignment lookups per second on one process.

What ``GET /api/experiments/assignments`` computes per running experiment once the experiment
rows are loaded: GrowthBook hash v2 of the openid, the bucket ranges and the variant
(``livecommerce.growth.experiments.assignments.compute``), plus the bare ``bucketing.assign``
and ``bulk.assign_many`` (what a node uses to bucket a whole room for a bubble experiment).
The issue asks for >= 20,000 lookups/s on one process.

    .venv/bin/python bench/experiments_assign.py [--json out.json]

Prints a Markdown table (lookups/s, best of 5 repeats) and writes JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # timer_stats.machine()

from timer_stats import machine

from livecommerce.growth.experiments.assignments import compute
from livecommerce.growth.experiments.bucketing import assign
from livecommerce.growth.experiments.bulk import assign_many

N = 20_000
OPENIDS = [f"oAbCdEfGhIjKlMnOpQrStUv{i:05d}" for i in range(N)]
EXPERIMENT = {
    "id": 1,
    "key": "bubble-title",
    "seed": "bubble-title",
    "weights": [0.1, 0.3, 0.6],
    "coverage": 0.9,
    "namespace": {"id": "bubbles", "start": 0.0, "end": 0.7},
    "variants": [{"key": "a"}, {"key": "b"}, {"key": "c"}],
    "sticky": True,
}


def bench() -> dict[str, float]:
    cases = {
        "bucketing.assign (hash v2, 3 variants)":
            lambda: [assign(o, "bubble-title", [0.1, 0.3, 0.6]) for o in OPENIDS],
        "assignments.compute (namespace + coverage + dict)":
            lambda: [compute(EXPERIMENT, o) for o in OPENIDS],
        "bulk.assign_many (a room at once, NumPy; namespace + coverage)":
            lambda: assign_many(OPENIDS, "bubble-title", [0.1, 0.3, 0.6], 0.9,
                                ("bubbles", 0.0, 0.7)),
    }  # fmt: skip
    return {name: N / min(timeit.repeat(fn, number=1, repeat=5)) for name, fn in cases.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rates = bench()
    print("| lookup | per second |\n|---|---|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} |")
    out = args.json or Path(__file__).parent / "results" / (
        f"experiments-assign-{dt.date.today().isoformat()}.json"
    )
    out.write_text(json.dumps({"machine": machine(), "lookups_per_second": rates}, indent=2))


if __name__ == "__main__":
    main()
