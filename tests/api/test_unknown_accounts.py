"""A well-signed token whose user or host does not exist (a development database reset, a
restored backup) is answered 401 `unknown_account` — the client signs in again — never a 500."""

from __future__ import annotations

import secrets
from typing import Any

from livecommerce.auth.tokens import issue_token
from livecommerce.config import DEV_SECRET
from tests.commerce.conftest import Shop, bearer
from tests.support import http

MISSING = 9_000_000_000  # a valid id that names nothing


async def test_writes_with_a_token_of_a_missing_account_are_401(shop: Shop) -> None:
    host_id, _ = await shop.host()
    goods_id = await shop.goods(host_id)
    offer_id = await shop.pool.fetchval(
        """INSERT INTO group_offers (host_id, goods_id, group_price_fen, size, fill_seconds)
           VALUES ($1, $2, 900, 2, 600) RETURNING id""",
        host_id,
        goods_id,
    )
    user = issue_token(DEV_SECRET, "user", MISSING, 600)
    host = issue_token(DEV_SECRET, "host", MISSING, 600)
    calls: list[tuple[str, dict[str, Any], str]] = [
        ("/api/orders", {"goods_id": goods_id, "quantity": 1}, user),
        ("/api/points/actions", {"action": "checkin"}, user),
        (f"/api/group-offers/{offer_id}/groups", {}, user),
        ("/api/host/experiments", {"key": "ghost", "variants": [{"key": "a"}, {"key": "b"}]}, host),
        ("/api/goods", {"title": "ghost", "price_fen": 100, "stock": 1}, host),
        ("/api/rooms", {"title": "ghost"}, host),
    ]
    for path, body, token in calls:
        status, answer = await http(
            "POST",
            shop.url + path,
            json=body,
            headers={**bearer(token), "Idempotency-Key": secrets.token_hex(8)},
        )
        assert status == 401, (path, status, answer)
        assert isinstance(answer, dict)
        assert answer["error"]["code"] == "unknown_account", (path, answer)
