"""The embedded default: `serve` with no URLs starts, reuses and cleanly stops its own servers."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from livecommerce.embedded import EmbeddedBackends, EmbeddedError
from tests.support import ServeProcess, child_env, http


def processes_using(path: Path) -> list[int]:
    """PIDs whose command line names ``path`` (our embedded servers name their data dir)."""
    needle = str(path).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline and int(entry) != os.getpid():
            found.append(int(entry))
    return found


@pytest.mark.slow
async def test_serve_embedded_ready_reused_and_no_orphans(tmp_path: Path) -> None:
    """make-run path: ready with demo data; Ctrl-C stops all; a second run reuses the data."""
    data = tmp_path / "data"
    env = child_env(LIVECOMMERCE_EMBEDDED_DATA_DIR=str(data))

    first = ServeProcess.start("serve", "--seed-demo", "--port", "0", env=env, cwd=tmp_path)
    try:
        url = first.url(timeout=90)
        status, body = await http("GET", url + "/readyz")
        assert status == 200, body
        assert processes_using(data), "embedded servers should be running"
    finally:
        code = first.stop(signal.SIGINT)
    assert code == 0, "\n".join(first.lines)
    assert "demo data inserted" in "\n".join(first.lines)
    assert processes_using(data) == [], "Ctrl-C left embedded servers behind"

    second = ServeProcess.start("serve", "--seed-demo", "--port", "0", env=env, cwd=tmp_path)
    try:
        url = second.url(timeout=90)
        assert (await http("GET", url + "/readyz"))[0] == 200
    finally:
        assert second.stop(signal.SIGTERM) == 0
    out = "\n".join(second.lines)
    assert "demo data already present" in out
    assert "initialising" not in out
    assert "applied migrations" not in out
    assert processes_using(data) == []


def test_data_dir_in_use_is_a_clear_error(tmp_path: Path) -> None:
    """A second user of the same data dir gets a one-line error naming the holder."""
    with (
        EmbeddedBackends(tmp_path, fsync=False),
        pytest.raises(EmbeddedError, match="in use by another livecommerce process"),
    ):
        EmbeddedBackends(tmp_path).start()


def test_killed_parent_leaves_no_orphans(tmp_path: Path) -> None:
    """kill -9 of the owning process takes the embedded servers down with it."""
    import subprocess
    import sys
    import time

    code = (
        "import sys, time\n"
        "from livecommerce.embedded import EmbeddedBackends\n"
        f"EmbeddedBackends({str(tmp_path)!r}, fsync=False).start()\n"
        "print('up', flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "up"
    assert processes_using(tmp_path)
    proc.kill()
    proc.wait()
    proc.stdout.close()
    deadline = time.monotonic() + 20
    while processes_using(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_using(tmp_path) == []


def test_embedded_valkey_is_append_only() -> None:
    """The embedded Valkey's config turns on the append-only file (fsync every second)."""
    from livecommerce.embedded import EmbeddedValkey

    conf = EmbeddedValkey(Path("/nonexistent"), "pw").config(6390)
    assert "appendonly yes" in conf
    assert "appendfsync everysec" in conf


async def test_acknowledged_write_survives_kill_9(tmp_path: Path) -> None:
    """A write Valkey acknowledged is still there after `kill -9` and a restart (AOF; with
    snapshots only it would be lost)."""
    import asyncio

    from redis.asyncio import Redis

    from livecommerce.embedded import EmbeddedValkey

    valkey = EmbeddedValkey(tmp_path / "v", "pw", fsync=False)
    valkey.start()
    try:
        client = Redis.from_url(valkey.url)
        await client.set("k", "acknowledged")
        await client.aclose()
        await asyncio.to_thread(valkey.kill)
        await asyncio.to_thread(valkey.start)
        client = Redis.from_url(valkey.url)
        assert await client.get("k") == b"acknowledged"
        await client.aclose()
    finally:
        valkey.stop()
