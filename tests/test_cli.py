"""CLI commands against real backends: migrate, seed-demo (idempotent) and host-token."""

from __future__ import annotations

from typing import Any

from livecommerce.auth.tokens import verify_token
from livecommerce.config import DEV_SECRET
from livecommerce.embedded import EmbeddedUrls
from tests.support import child_env, run_cli


def env_for(urls: EmbeddedUrls) -> dict[str, str]:
    return child_env(
        LIVECOMMERCE_DATABASE_URL=urls.database_url, LIVECOMMERCE_REDIS_URL=urls.redis_url
    )


async def test_seed_demo_twice_inserts_once(backend_urls: EmbeddedUrls, pool: Any) -> None:
    """seed-demo run twice leaves one demo host, one catalogue, one room."""
    for expected in ("demo data inserted", "demo data already present"):
        result = run_cli("seed-demo", env=env_for(backend_urls))
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout
    assert await pool.fetchval("SELECT count(*) FROM hosts") == 1
    assert await pool.fetchval("SELECT count(*) FROM live_rooms") == 1
    assert await pool.fetchval("SELECT count(*) FROM goods") == 8


async def test_host_token_prints_a_valid_host_token(backend_urls: EmbeddedUrls, pool: Any) -> None:
    """host-token NAME creates the host once and prints a token for it."""
    first = run_cli("host-token", "Alice", env=env_for(backend_urls))
    second = run_cli("host-token", "Alice", env=env_for(backend_urls))
    assert first.returncode == second.returncode == 0, first.stderr
    claims = [verify_token(DEV_SECRET, r.stdout.strip().splitlines()[-1]) for r in (first, second)]
    host_id = await pool.fetchval("SELECT id FROM hosts WHERE name = 'Alice'")
    assert [c.host_id for c in claims] == [host_id, host_id]
    bad = run_cli("host-token", "  ", env=env_for(backend_urls))
    assert bad.returncode == 1
    assert "host name must be" in bad.stderr


async def test_host_reset_password_trims_the_name(backend_urls: EmbeddedUrls, pool: Any) -> None:
    """`host reset-password "  Bea "` resets Bea's password, as create and sign-in trim names."""
    made = run_cli("host", "create", "Bea", env=env_for(backend_urls))
    assert made.returncode == 0, made.stderr
    before = await pool.fetchval("SELECT password_hash FROM hosts WHERE name = 'Bea'")
    reset = run_cli("host", "reset-password", "  Bea ", env=env_for(backend_urls))
    assert reset.returncode == 0, reset.stderr
    assert await pool.fetchval("SELECT password_hash FROM hosts WHERE name = 'Bea'") != before
