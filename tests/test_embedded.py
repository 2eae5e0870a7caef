"""The embedded default: `serve` with no URLs starts, reuses and cleanly stops its own servers."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
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


def _valkey_answers(url: str) -> bool:
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    client = Redis.from_url(url, socket_timeout=2)
    try:
        return bool(client.ping())
    except (RedisConnectionError, OSError):
        return False
    finally:
        client.close()


def _postgres_answers(url: str) -> bool:
    import asyncio

    import asyncpg

    async def query() -> bool:
        conn = await asyncpg.connect(url, timeout=2, database="postgres")
        try:
            return bool(await conn.fetchval("SELECT 1") == 1)
        finally:
            await conn.close()

    try:
        return asyncio.run(query())
    except (OSError, TimeoutError, asyncpg.PostgresError):
        return False


def _wait_until(check: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``check()`` held (polled every 0.1 s); AssertionError after ``timeout``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.1)
    return time.monotonic() - start


def test_supervised_backends_restart_after_kill_9_but_not_after_a_stop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With ``supervise=True`` (what `serve` uses) a Valkey or postmaster killed with SIGKILL is
    restarted on its port and answers again; one stopped on purpose stays down until started."""
    from livecommerce.embedded import RESTART_DELAY_SECONDS, WATCH_INTERVAL_SECONDS

    caplog.set_level(logging.WARNING, logger="livecommerce.embedded")
    emb = EmbeddedBackends(tmp_path / "data", fsync=False, supervise=True)
    urls = emb.start()
    try:
        pg_pid, valkey_pid = emb.pids

        os.kill(valkey_pid, signal.SIGKILL)
        _wait_until(lambda: not _valkey_answers(urls.redis_url), 5)
        _wait_until(lambda: _valkey_answers(urls.redis_url), 30)
        # The watcher logs the restart once the backend answers: a moment after this thread sees it.
        _wait_until(lambda: len(caplog.records) >= 2, 5)
        assert emb.pids[1] != valkey_pid

        os.kill(pg_pid, signal.SIGKILL)
        _wait_until(lambda: not _postgres_answers(urls.database_url), 5)
        _wait_until(lambda: _postgres_answers(urls.database_url), 30)
        _wait_until(lambda: len(caplog.records) >= 4, 5)
        assert emb.pids[0] != pg_pid

        lines = [r.getMessage() for r in caplog.records]
        assert lines[0].startswith(f"embedded Valkey (pid {valkey_pid}) died: killed by SIGKILL")
        assert lines[1].startswith("embedded Valkey restarted: pid ")
        assert lines[2].startswith(f"embedded PostgreSQL (pid {pg_pid}) died: killed by SIGKILL")
        assert lines[3].startswith("embedded PostgreSQL restarted: pid ")
        assert len(lines) == 4, lines
        assert all(r.exc_info is None for r in caplog.records)

        # A deliberate stop (the fault helpers) is not undone.
        emb.kill_valkey()
        emb.stop_postgres()
        time.sleep(RESTART_DELAY_SECONDS * 2 + WATCH_INTERVAL_SECONDS * 4)
        assert emb.pids == []
        assert not _valkey_answers(urls.redis_url)
        assert not _postgres_answers(urls.database_url)
        assert len(caplog.records) == 4, [r.getMessage() for r in caplog.records]
        emb.start_valkey()
        emb.start_postgres()
        assert _valkey_answers(urls.redis_url)
        assert _postgres_answers(urls.database_url)
    finally:
        emb.stop()
    # Nor is the final stop: nothing runs in the data dir afterwards.
    time.sleep(RESTART_DELAY_SECONDS + WATCH_INTERVAL_SECONDS * 4)
    assert processes_using(tmp_path) == []
    assert len(caplog.records) == 4, [r.getMessage() for r in caplog.records]


@pytest.mark.slow
async def test_serve_restarts_a_killed_backend_and_recovers(tmp_path: Path) -> None:
    """`livecommerce serve` on the embedded default: after `kill -9` of Valkey, then of
    PostgreSQL's postmaster, /readyz answers 503 and then 200 again, with no restart of the
    server; each death and restart is one log line."""
    import asyncio
    import re

    data = tmp_path / "data"
    env = child_env(LIVECOMMERCE_EMBEDDED_DATA_DIR=str(data))
    serve = ServeProcess.start("serve", "--seed-demo", "--port", "0", env=env, cwd=tmp_path)

    def pid_of(name: str) -> int:
        match = re.search(r"embedded \w+ pid (\d+)", serve.wait_for(f"embedded {name} pid "))
        assert match is not None
        return int(match.group(1))

    async def outage_seen(url: str, backend: str) -> float:
        """Seconds from now until /readyz answered 200 again (at most 30 s), having answered
        503 naming ``backend`` first."""
        start, limit = time.monotonic(), 30.0
        seen_503 = False
        while time.monotonic() - start < limit:
            status, body = await http("GET", url + "/readyz")
            if status == 503:
                checks = body["checks"] if isinstance(body, dict) else None
                assert isinstance(checks, dict), body
                assert checks[backend] != "ok", body
                seen_503 = True
            elif seen_503 and status == 200:
                return time.monotonic() - start
            await asyncio.sleep(0.1)
        raise AssertionError(f"/readyz: 503 seen {seen_503}, no 200 after it in {limit} s")

    try:
        url = serve.url(timeout=90)
        assert (await http("GET", url + "/readyz"))[0] == 200
        pg_pid, valkey_pid = pid_of("PostgreSQL"), pid_of("Valkey")

        os.kill(valkey_pid, signal.SIGKILL)
        await outage_seen(url, "redis")
        serve.wait_for(f"embedded Valkey (pid {valkey_pid}) died: killed by SIGKILL", 5)
        serve.wait_for("embedded Valkey restarted: pid", 5)

        os.kill(pg_pid, signal.SIGKILL)
        await outage_seen(url, "postgres")
        serve.wait_for(f"embedded PostgreSQL (pid {pg_pid}) died: killed by SIGKILL", 5)
        serve.wait_for("embedded PostgreSQL restarted: pid", 5)
        status, body = await http("GET", url + "/api/rooms/1")  # the pool recovered too
        assert status == 200, body
    finally:
        code = serve.stop(signal.SIGINT)
    out = "\n".join(serve.lines)
    assert code == 0, out
    assert "Traceback" not in out, out
    assert processes_using(data) == [], "Ctrl-C left embedded servers behind"
