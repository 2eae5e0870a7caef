"""The demo seed's goods images and room cover are served by the server itself (offline-safe)."""

from __future__ import annotations

import aiohttp
import msgspec

from livecommerce.api.types import Url
from livecommerce.devtools.demo import DEMO_GOODS, demo_base_url, seed_demo
from tests.console.conftest import Console


async def test_demo_images_are_valid_urls_this_server_serves(console: Console) -> None:
    """Every seeded image is an absolute http URL the goods API accepts, under this server's
    /static/, and GET on it answers an SVG; nothing points at an outside host."""
    async with console.pool.acquire() as conn:
        assert await seed_demo(conn, console.url)
    images = [
        row["images"][0] for row in await console.pool.fetch("SELECT images FROM goods ORDER BY id")
    ]
    cover = await console.pool.fetchval("SELECT cover_url FROM live_rooms")
    assert len(images) == len(DEMO_GOODS)
    async with aiohttp.ClientSession() as session:
        for url in [*images, cover]:
            assert msgspec.convert(url, Url) == url  # the goods image validation accepts it
            assert url.startswith(console.url + "/static/demo-"), url
            async with session.get(url) as resp:
                assert resp.status == 200, url
                assert resp.content_type == "image/svg+xml"
                assert (await resp.read()).startswith(b"<svg")


def test_demo_base_url_names_a_reachable_address() -> None:
    """A wildcard listen address becomes the loopback; IPv6 is bracketed; port 0 = 8080."""
    assert demo_base_url("0.0.0.0", 9000) == "http://127.0.0.1:9000"
    assert demo_base_url("::", 8080) == "http://127.0.0.1:8080"
    assert demo_base_url("::1", 8081) == "http://[::1]:8081"
    assert demo_base_url("example.test", 0) == "http://example.test:8080"
