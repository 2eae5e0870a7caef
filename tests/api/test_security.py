"""The OpenAPI document declares how every authenticated route is authenticated: each route that
takes a token — or the admin token — lists its `security`, with schemes the document defines;
checked against the route table and against what the running app answers without credentials."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from livecommerce.api.contract import ROUTES
from livecommerce.config import Settings
from tests.support import AppServer, http

ADMIN_TOKEN = "admin-" + "t" * 34
TOKEN_SCHEMES = {"user": "userToken", "viewer": "viewerToken", "host": "hostToken",
                 "agent": "agentToken"}  # fmt: skip
# Called by WeChat, not by a client of this API: authenticated by WeChat's signature over the
# request (WeChat Pay's `Wechatpay-Signature` headers, the customer-service push's `signature`
# query), a 401 without it (the push's GET is a 400 first: its query is required). No
# credential a caller holds, so no security scheme.
SIGNED_BY_WECHAT = {
    ("POST", "/api/pay/wechat/notify"),
    ("POST", "/api/pay/wechat/refund-notify"),
    ("GET", "/api/support/wechat/push"),
    ("POST", "/api/support/wechat/push"),
}


async def admin_server(make_server: Callable[..., Any], settings: Settings) -> AppServer:
    security = dataclasses.replace(settings.security, admin_token=ADMIN_TOKEN)
    server: AppServer = await make_server(dataclasses.replace(settings, security=security))
    return server


async def document(server: AppServer) -> dict[str, Any]:
    status, doc = await http("GET", server.url + "/api/openapi.json")
    assert status == 200
    assert isinstance(doc, dict)
    return doc


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method != "parameters"
    }


async def test_admin_routes_declare_the_admin_token(
    make_server: Callable[..., Any], settings: Settings
) -> None:
    """`components.securitySchemes.adminToken` is a bearer scheme; every `/api/admin/` operation
    requires it (and nothing else), documents 401 and 403, and answers 401
    `bad_admin_token` without it — before its body is read."""
    server = await admin_server(make_server, settings)
    doc = await document(server)
    scheme = doc["components"]["securitySchemes"]["adminToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "security.admin_token" in scheme["description"]
    admin = {k: op for k, op in operations(doc).items() if k[1].startswith("/api/admin/")}
    assert len(admin) == 4, sorted(admin)
    for (method, path), op in admin.items():
        assert op.get("security") == [{"adminToken": []}], (method, path)
        assert {"401", "403"} <= set(op["responses"]), (method, path)
        url = server.url + re.sub(r"\{[^}]+\}", "1", path)
        body = {"no": "such field"} if method == "POST" else None
        status, err = await http(method, url, json=body)
        assert (status, err["error"]["code"]) == (401, "bad_admin_token"), (path, err)  # type: ignore[index]


async def test_every_route_that_needs_credentials_declares_security(
    make_server: Callable[..., Any], settings: Settings
) -> None:
    """From the route table: a route taking tokens declares exactly their schemes, an admin
    route the admin token, any other none. From the app: every operation answering 401 to a
    request without credentials declares `security` (but the callbacks WeChat signs), and every
    operation declaring it answers 401 without them. Every scheme named is defined."""
    server = await admin_server(make_server, settings)
    doc = await document(server)
    ops = operations(doc)
    defined = set(doc["components"]["securitySchemes"])
    for r in server.app[ROUTES]:
        op = ops[(r.method, r.path)]
        assert r.admin == r.path.startswith("/api/admin/"), (r.method, r.path)
        if r.auth:
            want = [{TOKEN_SCHEMES[kind]: []} for kind in r.auth]
        elif r.admin:
            want = [{"adminToken": []}]
        else:
            want = None
        assert op.get("security") == want, (r.method, r.path, op.get("security"))
        for requirement in op.get("security", []):
            assert set(requirement) <= defined, (r.method, r.path, requirement)

    unauthenticated: set[tuple[str, str]] = set()
    for (method, path), op in ops.items():
        url = server.url + re.sub(r"\{[^}]+\}", "1", path)
        body = {} if method in ("POST", "PUT", "PATCH") else None
        status, _ = await http(method, url, json=body)
        if status == 401:
            unauthenticated.add((method, path))
        if op.get("security"):
            assert status == 401, (method, path, status)
    undeclared = {k for k in unauthenticated if not ops[k].get("security")}
    assert undeclared <= SIGNED_BY_WECHAT, sorted(undeclared - SIGNED_BY_WECHAT)
    assert ("POST", "/api/pay/wechat/notify") in undeclared  # the probe does see a 401
