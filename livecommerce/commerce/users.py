"""Users: upserted by WeChat openid at login; the session_key is kept server-side only."""

from __future__ import annotations

from typing import Any

import asyncpg

from livecommerce.commerce.wechat_client import WxSession
from livecommerce.errors import NotFound


async def upsert_wechat_user(conn: asyncpg.Connection | asyncpg.Pool, wx: WxSession) -> int:
    """The id of the user with this openid, created on first login; records unionid if given."""
    user_id: int = await conn.fetchval(
        """INSERT INTO users (openid, unionid, wx_session_key) VALUES ($1, $2, $3)
           ON CONFLICT (openid) DO UPDATE
              SET unionid = COALESCE(EXCLUDED.unionid, users.unionid),
                  wx_session_key = EXCLUDED.wx_session_key,
                  updated_at = now()
           RETURNING id""",
        wx.openid,
        wx.unionid,
        wx.session_key,
    )
    return user_id


async def get_profile(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> dict[str, Any]:
    """The public profile of a user (never openid/unionid/session_key)."""
    row = await conn.fetchrow(
        "SELECT id, nickname, avatar_url, created_at FROM users WHERE id = $1", user_id
    )
    if row is None:
        raise NotFound("no such user")
    return {
        "id": row["id"],
        "nickname": row["nickname"],
        "avatar_url": row["avatar_url"],
        "created_at": row["created_at"].isoformat(),
    }


async def update_profile(
    conn: asyncpg.Connection | asyncpg.Pool,
    user_id: int,
    *,
    nickname: str | None,
    avatar_url: str | None,
) -> dict[str, Any]:
    """Set the given fields (None = unchanged); the profile after. NotFound: no such user."""
    await conn.execute(
        """UPDATE users SET nickname = COALESCE($2, nickname),
                  avatar_url = COALESCE($3, avatar_url), updated_at = now()
           WHERE id = $1""",
        user_id,
        nickname,
        avatar_url,
    )
    return await get_profile(conn, user_id)


async def openid_of(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> str:
    """The user's openid (server-side only: for WeChat calls, never answered to clients)."""
    openid = await conn.fetchval("SELECT openid FROM users WHERE id = $1", user_id)
    if openid is None:
        raise NotFound("no such user")
    return str(openid)
