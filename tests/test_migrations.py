"""Schema migrations: ordered, once each, checksum-guarded, safe when nodes start together."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from livecommerce.db import connect, ensure_database, with_database
from livecommerce.embedded import EmbeddedUrls
from livecommerce.migrations import MigrationError, discover, migrate
from tests.support import ServeProcess, child_env, http


@pytest.fixture
async def fresh_db(backend_urls: EmbeddedUrls) -> AsyncIterator[str]:
    """The URL of a new, empty database, dropped after the test."""
    name = "t_" + uuid.uuid4().hex[:12]
    url = with_database(backend_urls.database_url, name)
    await ensure_database(url)
    yield url
    admin = await asyncpg.connect(with_database(backend_urls.database_url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_applies_in_order_once(fresh_db: str) -> None:
    """First run applies every file in order; a second run applies nothing."""
    conn = await connect(fresh_db)
    try:
        first = await migrate(conn)
        assert first == [f"{m.version:04d}_{m.name}" for m in discover()]
        assert await migrate(conn) == []
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == [m.version for m in discover()]
    finally:
        await conn.close()


async def test_checksum_mismatch_is_an_error(fresh_db: str, tmp_path: Path) -> None:
    """Editing an applied migration file is refused with a clear error."""
    (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (id int);")
    conn = await connect(fresh_db)
    try:
        assert await migrate(conn, tmp_path) == ["0001_a"]
        (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (id bigint);")
        with pytest.raises(MigrationError, match="checksum mismatch"):
            await migrate(conn, tmp_path)
    finally:
        await conn.close()


async def test_failed_migration_rolls_back_whole_file(fresh_db: str, tmp_path: Path) -> None:
    """A file that fails halfway leaves nothing of itself behind and is not recorded."""
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE ok (id int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half (id int); SELECT no_such_fn();")
    conn = await connect(fresh_db)
    try:
        with pytest.raises(MigrationError, match=r"0002_bad\.sql failed"):
            await migrate(conn, tmp_path)
        assert await conn.fetchval("SELECT to_regclass('half')") is None
        assert await conn.fetchval("SELECT to_regclass('ok')") == "ok"
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 1
    finally:
        await conn.close()


async def test_bad_file_name_is_an_error(tmp_path: Path) -> None:
    """A migration file not named NNNN_name.sql is refused."""
    (tmp_path / "1_x.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        discover(tmp_path)


async def test_concurrent_migrations_race_safely(fresh_db: str) -> None:
    """Eight connections migrating the same empty database at once: each file applied once."""
    conns = [await connect(fresh_db) for _ in range(8)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        applied = [name for r in results for name in r]
        assert sorted(applied) == sorted(f"{m.version:04d}_{m.name}" for m in discover())
    finally:
        for c in conns:
            await c.close()


@pytest.mark.slow
async def test_two_serve_processes_migrate_together(
    fresh_db: str, backend_urls: EmbeddedUrls
) -> None:
    """Two `serve` processes started at the same instant on one empty database both become ready."""
    env = child_env(
        LIVECOMMERCE_DATABASE_URL=fresh_db,
        LIVECOMMERCE_REDIS_URL=backend_urls.redis_url,
    )
    procs = [ServeProcess.start("serve", "--port", "0", env=env) for _ in range(2)]
    try:
        urls = await asyncio.gather(*(asyncio.to_thread(p.url) for p in procs))
        for url in urls:
            status, body = await http("GET", url + "/readyz")
            assert status == 200, body
    finally:
        codes = [p.stop(signal.SIGTERM) for p in procs]
    assert codes == [0, 0], "\n".join(line for p in procs for line in p.lines)
    text = "\n".join(line for p in procs for line in p.lines)
    assert "Traceback" not in text
    assert text.count("applied migrations:") == 1


async def test_0023_experiment_keys_unique_per_host(fresh_db: str, tmp_path: Path) -> None:
    """0023 on a database with experiments: existing rows stay, a key unique across hosts is
    now unique per host (another host may reuse it; the same host may not)."""
    for mig in discover():
        if mig.version < 23:
            (tmp_path / f"{mig.version:04d}_{mig.name}.sql").write_text(mig.sql, encoding="utf-8")
    conn = await connect(fresh_db)
    try:
        await migrate(conn, tmp_path)
        host = "INSERT INTO hosts (name) VALUES ($1) RETURNING id"
        a, b = await conn.fetchval(host, "a"), await conn.fetchval(host, "b")
        insert = """INSERT INTO experiments (host_id, key, variants, weights, coverage, seed,
                        primary_metric) VALUES ($1, $2, '[{"key": "a"}, {"key": "b"}]',
                        '{0.5, 0.5}', 1, $2, 'paid_conversion')"""
        await conn.execute(insert, a, "bubble-price")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(insert, b, "bubble-price")
        assert (await migrate(conn))[0] == "0023_experiment_keys_per_host"  # (and any later)
        await conn.execute(insert, b, "bubble-price")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(insert, a, "bubble-price")
        rows = await conn.fetch("SELECT host_id, key FROM experiments ORDER BY id")
        assert [(r["host_id"], r["key"]) for r in rows] == [
            (a, "bubble-price"),
            (b, "bubble-price"),
        ]
    finally:
        await conn.close()


async def test_0027_agent_password_version(fresh_db: str, tmp_path: Path) -> None:
    """0027 on a database with agents: each existing agent gets password version 0 (a session
    token of theirs from before carries no version and counts as ended); new agents start at 0;
    the column cannot be NULL."""
    for mig in discover():
        if mig.version < 27:
            (tmp_path / f"{mig.version:04d}_{mig.name}.sql").write_text(mig.sql, encoding="utf-8")
    conn = await connect(fresh_db)
    try:
        await migrate(conn, tmp_path)
        host = await conn.fetchval("INSERT INTO hosts (name) VALUES ('shop') RETURNING id")
        insert = """INSERT INTO support_agents (host_id, name, login, password_hash, capacity)
                    VALUES ($1, $2, $2, 'x', 2) RETURNING id"""
        before = await conn.fetchval(insert, host, "ann")
        assert (await migrate(conn))[0] == "0027_agent_password_version"  # (and any later)
        after = await conn.fetchval(insert, host, "bob")
        rows = await conn.fetch("SELECT id, password_version FROM support_agents ORDER BY id")
        assert [(r["id"], r["password_version"]) for r in rows] == [(before, 0), (after, 0)]
        with pytest.raises(asyncpg.NotNullViolationError):
            await conn.execute("UPDATE support_agents SET password_version = NULL")
    finally:
        await conn.close()
