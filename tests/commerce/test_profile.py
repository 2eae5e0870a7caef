"""PATCH /api/me: nickname through WeChat's content check (msgSecCheck v2), avatar URL."""

from __future__ import annotations

from livecommerce import keys
from tests.commerce.conftest import Shop, bearer
from tests.support import http


async def test_nickname_passes_content_check_and_is_stored(shop: Shop) -> None:
    """A clean nickname is checked by WeChat, stored and shown; the avatar URL too."""
    token = await shop.login()
    status, me = await http(
        "PATCH",
        shop.url + "/api/me",
        json={"nickname": "小明", "avatar_url": "https://img.example/a.png"},
        headers=bearer(token),
    )
    assert status == 200, me
    assert (me["nickname"], me["avatar_url"]) == ("小明", "https://img.example/a.png")  # type: ignore[index]
    assert "小明" in shop.server.app[keys.FAKE_WECHAT].checked_texts
    _, again = await http("GET", shop.url + "/api/me", headers=bearer(token))
    assert again["nickname"] == "小明"  # type: ignore[index]


async def test_risky_nickname_is_refused_and_not_stored(shop: Shop) -> None:
    """'risky' or 'review' from msgSecCheck: 400 content_risky on nickname, nothing changes."""
    token = await shop.login()
    for bad in ("违规昵称", "please review me"):
        status, body = await http(
            "PATCH", shop.url + "/api/me", json={"nickname": bad}, headers=bearer(token)
        )
        assert status == 400
        assert (body["error"]["field"], body["error"]["code"]) == ("nickname", "content_risky")  # type: ignore[index]
    _, me = await http("GET", shop.url + "/api/me", headers=bearer(token))
    assert me["nickname"] == ""  # type: ignore[index]


async def test_avatar_only_skips_the_check(shop: Shop) -> None:
    """Changing only the avatar does not call WeChat; a bad URL is 400."""
    token = await shop.login()
    fake = shop.server.app[keys.FAKE_WECHAT]
    before = len(fake.checked_texts)
    status, _ = await http(
        "PATCH", shop.url + "/api/me", json={"avatar_url": "https://x.example/b.png"},
        headers=bearer(token),
    )  # fmt: skip
    assert status == 200
    assert len(fake.checked_texts) == before
    status, body = await http(
        "PATCH", shop.url + "/api/me", json={"avatar_url": "ftp://x"}, headers=bearer(token)
    )
    assert status == 400
    assert body["error"]["field"] == "avatar_url"  # type: ignore[index]
