"""Console fixtures: host accounts with passwords, cookie-keeping HTTP sessions."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from livecommerce.auth.tokens import issue_token
from livecommerce.config import DEV_SECRET
from livecommerce.console import hosts
from tests.support import AppServer


@dataclass
class Account:
    id: int
    name: str
    password: str

    @property
    def token(self) -> str:
        """A bearer host token for the same host (the pre-console way)."""
        return issue_token(DEV_SECRET, "host", self.id, 3600)


@dataclass
class Console:
    server: AppServer
    pool: asyncpg.Pool

    @property
    def url(self) -> str:
        return self.server.url

    async def account(self, name: str | None = None, password: str | None = None) -> Account:
        name = name or "host-" + secrets.token_hex(4)
        password = password or hosts.new_password()
        host = await hosts.create_host(self.pool, name, password)
        return Account(host.id, host.name, password)

    async def sign_in(self, session: aiohttp.ClientSession, account: Account) -> str:
        """Sign ``session`` in as ``account``; the CSRF token."""
        async with session.post(
            self.url + "/api/console/session",
            json={"name": account.name, "password": account.password},
        ) as resp:
            body = await resp.json()
            assert resp.status == 201, body
            token: str = body["csrf_token"]
            return token

    async def call(
        self, session: aiohttp.ClientSession, method: str, path: str, **kw: Any
    ) -> tuple[int, Any]:
        async with session.request(method, self.url + path, **kw) as resp:
            ctype = resp.content_type
            return resp.status, (await resp.json() if ctype == "application/json" else None)


@pytest.fixture
async def console(server: AppServer, pool: asyncpg.Pool) -> Console:
    """The app on a real port with a clean database, plus host-account helpers."""
    return Console(server, pool)


@pytest.fixture
async def browser_session() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client that keeps cookies like a browser (also for 127.0.0.1)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


CHROMIUM = Path(os.environ.get("LIVECOMMERCE_CHROMIUM", "/usr/bin/chromium"))
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Debian chromium driven by Playwright (never a downloaded browser build).

    Skipped with one reason line (shown by ``-ra``) when playwright or chromium is missing."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("browser tests skipped: Python package playwright missing (make test adds it)")
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 (once, before the browser starts)
        pytest.skip(f"browser tests skipped: no {CHROMIUM} (apt-get install chromium, as root)")
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)
        p.selectors.set_test_id_attribute("data-testid")
        try:
            yield b
        finally:
            await b.close()
