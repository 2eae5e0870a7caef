"""Property-based fuzz of every documented endpoint: arbitrary input never gets a 500.

Each example picks a documented operation from /api/openapi.json and sends it random path ids,
query values, JSON bodies (often shaped like the documented request) and a valid or bogus
token. Whatever comes back must be < 500, JSON errors must have the uniform shape, and a 2xx
must carry the documented top-level fields.
"""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livecommerce.commerce.openapi import document
from tests.commerce.conftest import Shop

DOC = document()
OPERATIONS = sorted(
    (path, method)
    for path, item in DOC["paths"].items()
    for method in item
    if method != "parameters"
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "title", "price_fen", "stock", "images", "room_ids", "status", "category", "description",
    "goods_id", "quantity", "code", "carrier", "tracking_no",
]  # fmt: skip
BODIES = st.one_of(JSON, st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=5))
IDS = st.one_of(
    st.integers(min_value=-5, max_value=2**64).map(str),
    st.text(alphabet="0123456789abc-%.", min_size=1, max_size=25),
)
QUERY = st.dictionaries(
    st.sampled_from(["limit", "cursor", "category", "room_id", "status"]),
    st.one_of(st.text(max_size=40), st.integers(-10, 100).map(str)),
    max_size=3,
)
TOKENS = st.sampled_from(["user", "host", "none", "garbage"])


def _required(schema: dict[str, Any]) -> list[str]:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return list(DOC["components"]["schemas"][name].get("required", []))
    return list(schema.get("required", []))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    op=st.sampled_from(OPERATIONS),
    ident=IDS,
    query=QUERY,
    body=BODIES,
    token_kind=TOKENS,
    key=st.text(alphabet="abcXYZ09_-! ", min_size=0, max_size=70),
)
async def test_no_documented_endpoint_answers_500(
    fuzz_shop: tuple[Shop, dict[str, str]],
    op: tuple[str, str],
    ident: str,
    query: dict[str, str],
    body: Any,
    token_kind: str,
    key: str,
) -> None:
    """Random ids, queries, bodies and tokens on every documented operation: never a 5xx."""
    shop, tokens = fuzz_shop
    path, method = op
    url = shop.url + re.sub(r"\{\w+\}", ident, path)
    headers = {"Content-Type": "application/json"}
    if token_kind in tokens:
        headers["Authorization"] = f"Bearer {tokens[token_kind]}"
    elif token_kind == "garbage":
        headers["Authorization"] = "Bearer x.y"
    if key:
        headers["Idempotency-Key"] = key
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method.upper(), url, params=query, data=json.dumps(body), headers=headers
        ) as resp,
    ):
        raw = await resp.read()
        assert resp.status < 500, (method, url, body, raw[:300])
        if resp.content_type != "application/json":
            return
        answer = orjson.loads(raw)
        if resp.status >= 400:
            assert set(answer) == {"error"}
            assert {"code", "message"} <= set(answer["error"])
            return
        documented = DOC["paths"][path][method]["responses"].get(str(resp.status))
        assert documented is not None, (method, path, resp.status)
        schema = documented["content"]["application/json"]["schema"]
        assert set(_required(schema)) <= set(answer)
