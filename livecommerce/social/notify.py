"""WeChat subscribe messages (group-buy success) and the sender of queued notifications.

The sender claims due ``group_notifications`` rows with ``FOR UPDATE SKIP LOCKED`` (several
nodes never send the same row at once), sends each over real HTTP through the WeChat API
(the in-process fake in development) and marks it ``sent``, ``refused`` (the user declined
subscribe messages: errcode 43101) or, after ``groups.notify_max_attempts``, ``failed``.
A crash between WeChat's answer and the commit re-sends that one message: delivery is
at-least-once, duplicates need a crash at exactly that point.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import asyncpg

from livecommerce.commerce.wechat_client import MessageFailed, MessageRefused, WechatClient
from livecommerce.config import GroupsConfig

log = logging.getLogger("livecommerce.social.notify")
Sent = Literal["sent", "refused", "retry"]


@dataclass
class SubscribeSender:
    """Sends group subscribe messages through the shared WeChat client (its token cache)."""

    client: WechatClient
    sent: int = field(default=0)

    async def send(self, openid: str, template_id: str, page: str, data: dict[str, str]) -> Sent:
        try:
            await self.client.send_subscribe(openid, template_id, page, data)
        except MessageRefused:
            return "refused"
        except MessageFailed as exc:
            log.warning("group subscribe message failed: %s", exc)
            return "retry"
        self.sent += 1
        return "sent"


async def send_due(
    pool: asyncpg.Pool, sender: SubscribeSender, cfg: GroupsConfig, batch: int
) -> int:
    """Send up to ``batch`` due group-success messages; the number handled."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            """SELECT n.group_id, n.user_id, n.attempts, u.openid, g.size, o.group_price_fen,
                      gd.title
               FROM group_notifications n
               JOIN users u ON u.id = n.user_id
               JOIN groups g ON g.id = n.group_id
               JOIN group_offers o ON o.id = g.offer_id
               JOIN goods gd ON gd.id = o.goods_id
               WHERE n.status = 'pending' AND n.next_at <= now()
               ORDER BY n.next_at LIMIT $1 FOR UPDATE OF n SKIP LOCKED""",
            batch,
        )
        for r in rows:
            data = {
                "thing1": r["title"][:20],
                "amount2": f"¥{r['group_price_fen'] // 100}.{r['group_price_fen'] % 100:02d}",
                "number3": str(r["size"]),
                "phrase4": "拼团成功",
            }
            outcome = await sender.send(
                r["openid"], cfg.success_template_id, f"pages/group/index?id={r['group_id']}", data
            )
            if outcome == "retry":
                attempts = r["attempts"] + 1
                await conn.execute(
                    """UPDATE group_notifications SET attempts = $3,
                              status = CASE WHEN $3 >= $4 THEN 'failed' ELSE 'pending' END,
                              next_at = now() + make_interval(secs => $5::float8)
                       WHERE group_id = $1 AND user_id = $2""",
                    r["group_id"],
                    r["user_id"],
                    attempts,
                    cfg.notify_max_attempts,
                    float(2**attempts),
                )
            else:
                await conn.execute(
                    """UPDATE group_notifications SET status = $3, attempts = attempts + 1,
                              sent_at = CASE WHEN $3 = 'sent' THEN now() END
                       WHERE group_id = $1 AND user_id = $2""",
                    r["group_id"],
                    r["user_id"],
                    outcome,
                )
    return len(rows)


async def seconds_to_next(conn: asyncpg.Connection | asyncpg.Pool) -> float | None:
    value = await conn.fetchval(
        """SELECT EXTRACT(EPOCH FROM min(next_at) - now())::float8
           FROM group_notifications WHERE status = 'pending'"""
    )
    return None if value is None else float(value)
