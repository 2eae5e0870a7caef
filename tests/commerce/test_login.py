"""WeChat login over real HTTP against the fake WeChat server: success and every error code."""

from __future__ import annotations

import io
import logging
import time

import aiohttp
import pytest

from livecommerce import keys
from livecommerce.auth.tokens import issue_token
from livecommerce.config import DEV_SECRET
from livecommerce.devtools.fake_wechat import openid_for, unionid_for
from tests.commerce.conftest import Shop, bearer
from tests.support import http

LOGIN = "/api/auth/wechat/login"


async def test_login_creates_user_once_and_token_works(shop: Shop) -> None:
    """A code logs in; the same WeChat user with a new code is the same user; /api/me works."""
    status, body = await http("POST", shop.url + LOGIN, json={"code": "alice.1"})
    assert status == 200
    assert isinstance(body, dict)
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 7 * 24 * 3600
    assert abs(body["expires_at"] - (time.time() + 7 * 24 * 3600)) < 60  # type: ignore[operator]
    user = body["user"]
    status, again = await http("POST", shop.url + LOGIN, json={"code": "alice.2"})
    assert status == 200
    assert again["user"] == user  # type: ignore[index]
    status, me = await http("GET", shop.url + "/api/me", headers=bearer(str(body["token"])))
    assert (status, me) == (200, user)
    app_id = shop.server.app[keys.WECHAT_CLIENT].app_id
    row = await shop.pool.fetchrow("SELECT openid, unionid FROM users")
    assert row["openid"] == openid_for(app_id, "alice")
    assert row["unionid"] is None
    assert await shop.pool.fetchval("SELECT count(*) FROM users") == 1


async def test_unionid_is_recorded(shop: Shop) -> None:
    """A user WeChat gives a unionid gets it stored."""
    assert (await http("POST", shop.url + LOGIN, json={"code": "union-bob.1"}))[0] == 200
    assert await shop.pool.fetchval("SELECT unionid FROM users") == unionid_for("union-bob")


async def test_session_key_never_leaves_the_server(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    """The session_key is stored server-side, but is in no response and no log line."""
    caplog.set_level(logging.DEBUG)
    status, body = await http("POST", shop.url + LOGIN, json={"code": "busy1~carol.1"})
    assert status == 200
    session_key = await shop.pool.fetchval("SELECT wx_session_key FROM users")
    assert len(session_key) > 10
    assert session_key not in str(body)
    assert "session_key" not in str(body)
    assert session_key not in caplog.text
    assert "jscode2session attempt 1/3 failed" in caplog.text  # the busy retry was logged


async def test_each_code_works_once(shop: Shop) -> None:
    """A replayed code is refused with 400 code_used and creates nothing."""
    assert (await http("POST", shop.url + LOGIN, json={"code": "dave.1"}))[0] == 200
    status, body = await http("POST", shop.url + LOGIN, json={"code": "dave.1"})
    assert status == 400
    assert body["error"]["code"] == "code_used"  # type: ignore[index]
    assert body["error"]["field"] == "code"  # type: ignore[index]


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("e40029~x.1", 400, "invalid_code"),
        ("e45011~x.1", 429, "rate_limited"),
        ("e40226~x.1", 403, "user_blocked"),
        ("e40013~x.1", 502, "upstream_error"),
        ("busy9~x.1", 502, "wechat_unavailable"),
        ("html~x.1", 502, "wechat_unavailable"),
        ("zz~x.1", 400, "invalid_code"),
        ("not a code!", 400, "invalid_code"),
    ],
)
async def test_wechat_error_codes(shop: Shop, code: str, status: int, error: str) -> None:
    """Each WeChat error maps to a clear 4xx/502 with a stable code, and no user is created."""
    got, body = await http("POST", shop.url + LOGIN, json={"code": code})
    assert (got, body["error"]["code"]) == (status, error)  # type: ignore[index]
    assert "traceback" not in str(body).lower()
    assert await shop.pool.fetchval("SELECT count(*) FROM users") == 0


async def test_system_busy_is_retried_with_backoff(shop: Shop) -> None:
    """-1 twice then success: the login succeeds after three calls to WeChat."""
    fake = shop.server.app[keys.FAKE_WECHAT]
    before = fake.login_calls
    status, _ = await http("POST", shop.url + LOGIN, json={"code": "busy2~erin.1"})
    assert status == 200
    assert fake.login_calls - before == 3


async def test_always_busy_gives_up_after_max_attempts(shop: Shop) -> None:
    """A WeChat that stays busy is called max_attempts times, then 502."""
    fake = shop.server.app[keys.FAKE_WECHAT]
    before = fake.login_calls
    assert (await http("POST", shop.url + LOGIN, json={"code": "busy9~frank.1"}))[0] == 502
    assert fake.login_calls - before == 3


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b"{}", "code"),
        (b'{"code": 42}', "code"),
        (b'{"code": ""}', "code"),
        (b'{"code": "' + b"a" * 129 + b'"}', "code"),
        (b'{"code": "a.1", "admin": true}', "admin"),
    ],
)
async def test_malformed_login_names_the_field(shop: Shop, data: bytes, field: str) -> None:
    """Malformed bodies get 400 naming the field, before WeChat is called."""
    fake = shop.server.app[keys.FAKE_WECHAT]
    status, body = await http("POST", shop.url + LOGIN, data=data)
    assert status == 400
    assert body["error"]["field"] == field  # type: ignore[index]
    assert fake.login_calls == 0


async def test_oversized_login_body_is_413(shop: Shop) -> None:
    """A body over server.max_body_bytes is refused with 413."""
    data = io.BytesIO(b'{"code": "' + b"a" * 1_100_000 + b'"}')
    async with aiohttp.ClientSession() as s, s.post(shop.url + LOGIN, data=data) as resp:
        assert resp.status == 413
        assert (await resp.json())["error"]["code"] == "payload_too_large"


async def test_expired_and_wrong_tokens_are_refused(shop: Shop) -> None:
    """An expired user token is 401 token_expired; a host token on /api/me is 403; none is 401."""
    token = await shop.login("gina")
    user_id = await shop.pool.fetchval("SELECT id FROM users")
    expired = issue_token(DEV_SECRET, "user", user_id, 60, now=time.time() - 120)
    status, body = await http("GET", shop.url + "/api/me", headers=bearer(expired))
    assert (status, body["error"]["code"]) == (401, "token_expired")  # type: ignore[index]
    host = issue_token(DEV_SECRET, "host", 1, 60)
    assert (await http("GET", shop.url + "/api/me", headers=bearer(host)))[0] == 403
    assert (await http("GET", shop.url + "/api/me"))[0] == 401
    assert (await http("GET", shop.url + "/api/me", headers=bearer(token + "x")))[0] == 401
    assert (await http("GET", shop.url + "/api/me", headers=bearer(token)))[0] == 200
