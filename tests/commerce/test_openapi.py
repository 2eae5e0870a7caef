"""The OpenAPI document: served, valid in shape, and in sync with the route table."""

from __future__ import annotations

import re

import orjson

from livecommerce import keys
from livecommerce.devtools.fake_wechat import openid_for
from tests.commerce.conftest import Shop
from tests.support import http


async def test_every_route_is_documented_and_every_path_routed(shop: Shop) -> None:
    """Each (method, path) the app serves is in /api/openapi.json and vice versa."""
    status, doc = await http("GET", shop.url + "/api/openapi.json")
    assert status == 200
    assert isinstance(doc, dict)
    assert doc["openapi"] == "3.1.0"
    documented = {
        (method.upper(), path)
        for path, item in doc["paths"].items()  # type: ignore[attr-defined]
        for method in item
        if method != "parameters"
    }
    routed = set()
    for route in shop.server.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter", "")
        if route.method in ("HEAD", "*"):
            continue
        routed.add((route.method, path))
    assert routed == documented
    for ops_path in ("/healthz", "/readyz", "/metrics"):
        assert ops_path in doc["paths"]  # type: ignore[operator]


async def test_every_reference_resolves(shop: Shop) -> None:
    """All $refs point at defined components."""
    _, doc = await http("GET", shop.url + "/api/openapi.json")
    text = str(doc)
    for kind, name in re.findall(r"#/components/(\w+)/(\w+)", text):
        assert name in doc["components"][kind], (kind, name)  # type: ignore[index]


async def test_fake_wechat_message_endpoints(shop: Shop) -> None:
    """The fake serves access tokens and subscribe/custom messages with WeChat's error codes."""
    client = shop.server.app[keys.WECHAT_CLIENT]
    q = f"grant_type=client_credential&appid={client.app_id}&secret={client.app_secret}"
    _, body = await http("GET", f"{shop.fake_url}/cgi-bin/token?{q}")
    assert isinstance(body, str)  # WeChat answers JSON as text/plain, like the real one
    token = orjson.loads(body)["access_token"]
    url = f"{shop.fake_url}/cgi-bin/message/subscribe/send?access_token={token}"
    msg = {"touser": openid_for(client.app_id, "amy"), "template_id": "t1", "data": {"a": 1}}
    assert '"errcode":0' in str((await http("POST", url, json=msg))[1])
    refuse = {**msg, "touser": openid_for(client.app_id, "refuse")}
    assert "43101" in str((await http("POST", url, json=refuse))[1])
    assert "47003" in str((await http("POST", url, json={"touser": msg["touser"]}))[1])
    bad = url.replace(token, "nope")
    assert "40001" in str((await http("POST", bad, json=msg))[1])
    _, listed = await http("GET", shop.fake_url + "/dev/messages")
    assert len(listed["messages"]) == 1  # type: ignore[index]
