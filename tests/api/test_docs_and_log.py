"""/api/docs and every asset it loads are served by us; one access-log line per request."""

from __future__ import annotations

import logging
import re

import aiohttp
import orjson
import pytest

from livecommerce.logs import JsonFormatter
from tests.commerce.conftest import Shop, bearer
from tests.support import http


async def test_docs_page_and_every_asset_it_loads_are_served_locally(shop: Shop) -> None:
    """The Swagger UI page references only our own URLs, and each of them answers 200."""
    status, page = await http("GET", shop.url + "/api/docs")
    assert status == 200
    assert isinstance(page, str)
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert refs, page
    async with aiohttp.ClientSession() as session:
        for ref in refs:
            assert ref.startswith("/"), f"{ref} is not served by us"
            async with session.get(shop.url + ref) as resp:
                assert resp.status == 200, ref
                assert len(await resp.read()) > 0
    status, _ = await http("GET", shop.url + "/api/docs/init.js")
    assert status == 200
    status, err = await http("GET", shop.url + "/api/docs/..%2Fsecrets")
    assert (status, err["error"]["code"]) == (404, "not_found")  # type: ignore[index]
    status, doc = await http("GET", shop.url + "/api/openapi.json")
    assert (status, doc["openapi"]) == (200, "3.1.0")  # type: ignore[index]


async def test_one_access_log_line_per_request_without_tokens(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    """Method, route template, status, duration and principal kind; no ids, tokens, queries."""
    host_id, host = await shop.host()
    gid = await shop.goods(host_id)
    token = await shop.login()
    caplog.set_level(logging.INFO, logger="livecommerce.access")
    caplog.clear()
    await http("GET", f"{shop.url}/api/goods/{gid}?x=secret-query")
    await http("GET", f"{shop.url}/api/orders/{10**9}", headers=bearer(token))
    await http("PATCH", f"{shop.url}/api/goods/{gid}", json={"title": "t"}, headers=bearer(host))
    await http("GET", shop.url + "/healthz")
    await http("GET", shop.url + "/metrics")
    records = [r for r in caplog.records if r.name == "livecommerce.access"]
    fields = [r.fields for r in records]  # type: ignore[attr-defined]
    assert [(f["method"], f["route"], f["status"], f["principal"]) for f in fields] == [
        ("GET", "/api/goods/{id}", 400, "-"),
        ("GET", "/api/orders/{id}", 404, "user"),
        ("PATCH", "/api/goods/{id}", 200, "host"),
    ]
    assert all(isinstance(f["duration_ms"], float) for f in fields)
    line = JsonFormatter().format(records[1])
    entry = orjson.loads(line)
    assert entry["route"] == "/api/orders/{id}"
    assert entry["status"] == 404
    assert token not in line
    assert "secret-query" not in " ".join(JsonFormatter().format(r) for r in records)
