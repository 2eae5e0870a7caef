"""`livecommerce host create` works while a server holds the same embedded data dir."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from livecommerce.auth.tokens import verify_token
from livecommerce.config import DEV_SECRET
from livecommerce.console.passwords import verify_password
from livecommerce.embedded import EmbeddedBackends, running_urls
from tests.support import child_env, run_cli


async def test_host_create_and_reset_while_the_data_dir_is_in_use(tmp_path: Path) -> None:
    """With the embedded backends running (data dir locked), host create/reset-password
    connect to them instead of failing with "data dir in use"."""
    data_dir = tmp_path / "data"
    env = child_env(LIVECOMMERCE_EMBEDDED_DATA_DIR=str(data_dir))
    assert running_urls(data_dir) is None
    with EmbeddedBackends(data_dir, fsync=False) as urls:
        assert running_urls(data_dir) == urls
        made = run_cli("host", "create", "Dora", env=env)
        assert made.returncode == 0, made.stderr
        password = made.stdout.strip().splitlines()[-1].removeprefix("password: ")
        again = run_cli("host", "create", "Dora", env=env)
        assert again.returncode == 1
        assert "exists" in again.stderr
        reset = run_cli("host", "reset-password", "Dora", env=env)
        assert reset.returncode == 0, reset.stderr
        new_password = reset.stdout.strip().splitlines()[-1].removeprefix("password: ")
        conn = await asyncpg.connect(urls.database_url)
        try:
            stored = await conn.fetchval("SELECT password_hash FROM hosts WHERE name = 'Dora'")
        finally:
            await conn.close()
        assert new_password != password
        assert verify_password(stored, new_password)
        assert not verify_password(stored, password)
    assert running_urls(data_dir) is None


async def test_host_token_while_the_data_dir_is_in_use(tmp_path: Path) -> None:
    """`livecommerce host-token NAME` next to a running server (the token the README's
    `loadtest URL --host-token` needs) used to fail with "data dir ... is in use"."""
    data_dir = tmp_path / "data"
    env = child_env(LIVECOMMERCE_EMBEDDED_DATA_DIR=str(data_dir))
    with EmbeddedBackends(data_dir, fsync=False) as urls:
        result = run_cli("host-token", "Erin", env=env)
        assert result.returncode == 0, result.stderr
        claims = verify_token(DEV_SECRET, result.stdout.strip().splitlines()[-1])
        conn = await asyncpg.connect(urls.database_url)
        try:
            host_id = await conn.fetchval("SELECT id FROM hosts WHERE name = 'Erin'")
        finally:
            await conn.close()
        assert claims.host_id == host_id
