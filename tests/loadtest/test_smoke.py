"""Smoke tests of `livecommerce loadtest`: a few hundred viewers against a real `serve` process,
and the loader's own accounting (gaps and duplicates are really detected)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from livecommerce.config import DEV_SECRET
from livecommerce.embedded import EmbeddedUrls
from livecommerce.loadtest.hist import Histogram
from livecommerce.loadtest.wsclient import Stats, Viewer
from tests.realtime.conftest import make_world
from tests.support import ServeProcess, child_env, run_cli

REQUIRED_KEYS = {
    "viewers_target", "viewers_connected", "connect_failures", "pushes", "deliveries", "missing",
    "duplicates", "latency_ms", "last_viewer_latency_ms", "server_rss_kib_per_viewer",
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_loadtest_cli_against_a_server(
    backend_urls: EmbeddedUrls, pool: Any, redis: Any, tmp_path: Path
) -> None:
    """300 viewers (two worker processes, two source addresses), 5 pushes and 20 % churn against a
    real server process: every push reaches every viewer once, the JSON has the promised keys."""
    world = await make_world(pool)
    env = child_env(
        LIVECOMMERCE_DATABASE_URL=backend_urls.database_url,
        LIVECOMMERCE_REDIS_URL=backend_urls.redis_url,
        LIVECOMMERCE_ROOMS_MAX_CONNECTIONS_PER_IP="100000",
    )
    server = ServeProcess.start("serve", "--port", "0", "--no-migrate", env=env)
    try:
        url = server.url()
        out = tmp_path / "lt.json"
        done = run_cli(
            "loadtest", url, "--room-ids", str(world.room_id), "--host-token", world.host_token,
            "--secret", DEV_SECRET, "--viewers", "300", "--workers", "2", "--ramp", "600",
            "--pushes", "5", "--push-interval", "0.3", "--duration", "2", "--churn", "20",
            "--json", str(out), "--quiet",
            env=env, timeout=180,
        )  # fmt: skip
    finally:
        server.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    rep = json.loads(out.read_text())
    assert rep.keys() >= REQUIRED_KEYS
    assert rep["viewers_target"] == 300
    assert rep["viewers_connected"] == 300
    assert rep["connect_failures"] == 0
    assert rep["pushes"] == 5
    assert rep["missing"] == 0
    assert rep["duplicates"] == 0
    assert rep["workers"] == 2
    assert rep["sources"] == ["127.0.0.2", "127.0.0.3"]
    churn = rep["churn"]
    assert churn["dropped"] == 60
    assert churn["resumed"] == 60
    assert churn["resynced"] == 0
    # Every push reached every viewer: live, or replayed to a viewer resuming after its drop.
    assert rep["deliveries"] + churn["replayed_frames"] >= 5 * 300
    assert set(rep["latency_ms"]) == {"p50", "p90", "p99", "p999", "max"}
    assert set(rep["last_viewer_latency_ms"]) == {"p50", "p99", "max"}
    assert rep["server_rss_kib_per_viewer"] is not None
    assert "missing" in done.stdout


def _frame(seq: int, kind: str = "goods_push") -> bytes:
    payload = b'{"seq":%d,"ts":%d,"type":"%s","x":1}' % (seq, 1_700_000_000_000, kind.encode())
    return bytes((0x81, len(payload))) + payload


def test_viewer_accounting_finds_gaps_and_duplicates() -> None:
    """The lean client counts a gap as missing and a repeated seq as a duplicate, even when
    frames arrive split across reads."""
    stats = Stats()
    v = Viewer(1, 7, 0, stats, lambda _v, _r: None)
    v.upgraded = True
    welcome = b'{"type":"welcome","seq":10,"epoch":"e","resumed":false,"missed":0}'
    v.data_received(bytes((0x81, len(welcome))) + welcome)
    assert v.last == 10
    stream = _frame(11) + _frame(12, "likes") + _frame(14) + _frame(14) + _frame(13) + _frame(15)
    for i in range(0, len(stream), 7):  # arbitrary TCP segmentation
        v.data_received(stream[i : i + 7])
    assert v.missing == 1  # 13 came after 14: too late, counted as missing, then as a duplicate
    assert v.dups == 2
    assert v.last == 15
    assert stats.deliveries == 3  # 11, 14, 15 are live goods pushes
    assert sorted(q for _, q in stats.push_count) == [11, 14, 15]


def test_histogram_percentiles_within_precision() -> None:
    """Percentiles of the log-bucketed histogram are within 2 % of the exact ones."""
    h = Histogram()
    values = [i * 0.37 for i in range(1, 5001)]
    for x in values:
        h.record(x)
    for pct in (50, 90, 99):
        exact = values[int(len(values) * pct / 100) - 1]
        assert abs(h.percentile(pct) - exact) <= exact * 0.02
    assert h.summary()["max"] == pytest.approx(values[-1], rel=1e-3)
    other = Histogram.from_dict(h.to_dict())
    other.merge(h)
    assert other.count == 2 * len(values)
