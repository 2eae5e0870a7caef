"""Deliver the notification outbox: live to the user's sockets, durably as subscribe messages.

One task per node; rows are claimed with ``FOR UPDATE SKIP LOCKED`` so several nodes share the
work without sending a row twice. A row is ``sent`` once WeChat accepted the subscribe message
(or when no template is configured, once published to the user's sockets); a refusal that will
never change (the user did not subscribe) makes it ``failed`` at once; transient failures retry
with exponential backoff up to ``MAX_ATTEMPTS``. The socket notice carries the notification id:
in the rare case of a crash between publishing and committing, a client may see it twice and
can drop the repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from livecommerce import redis_keys as rk
from livecommerce.aio import check_cancelled, wait_event
from livecommerce.commerce.wechat_client import MessageFailed, MessageRefused, WechatClient
from livecommerce.notify.outbox import WAKE_CHANNEL

log = logging.getLogger("livecommerce.notify")
BATCH = 50
MAX_ATTEMPTS = 8
IDLE_RECHECK_SECONDS = 30.0
ERROR_BACKOFF_SECONDS = 1.0


def _yuan(fen: int) -> str:
    return f"¥{fen // 100}.{fen % 100:02d}"


def subscribe_message(kind: str, payload: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The mini-program page and template fields of a kind's subscribe message
    (thing = text of at most 20, amount = money, phrase = status of at most 5, number)."""
    title = str(payload.get("title", ""))[:20]
    if kind == "group_succeeded":
        data = {
            "thing1": title,
            "amount2": _yuan(int(payload.get("group_price_fen", 0))),
            "number3": str(payload.get("size", "")),
            "phrase4": "拼团成功",
        }
        return f"pages/group/index?id={payload.get('group_id', '')}", data
    if kind == "group_failed":
        refunded = payload.get("outcome") == "refunded"
        data = {
            "thing1": title,
            "amount2": _yuan(int(payload.get("refund_fen", 0))),
            "phrase3": "拼团失败",
            "thing4": "已原路退款" if refunded else "订单已取消",
        }
        return f"pages/orders/detail?id={payload.get('order_id', '')}", data
    data = {"thing1": title, "phrase3": str(payload.get("status", ""))[:5]}
    if "total_fen" in payload:
        data["amount2"] = _yuan(int(payload["total_fen"]))
    if "tracking_no" in payload:
        data["character_string4"] = str(payload["tracking_no"])[:32]
    return f"pages/orders/detail?id={payload.get('order_id', '')}", data


class NotificationSender:
    def __init__(
        self, pool: asyncpg.Pool, redis: Redis, wechat: WechatClient, templates: dict[str, str]
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.wechat = wechat
        # Subscribe-message template per notification kind; kinds without one go to sockets only.
        self.templates = {kind: t for kind, t in templates.items() if t}
        self.wake = asyncio.Event()

    async def run(self) -> None:
        listener = await self.pool.acquire()
        await listener.add_listener(WAKE_CHANNEL, self._on_notify)
        try:
            while True:
                check_cancelled()
                self.wake.clear()
                try:
                    sent = await self.send_due()
                    if sent >= BATCH:
                        continue
                    delay = await self._seconds_to_next()
                except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, RedisError) as exc:
                    log.warning("notification sender error (%s); retrying", exc)
                    delay = ERROR_BACKOFF_SECONDS
                await wait_event(self.wake, delay)
        finally:
            with contextlib.suppress(Exception):
                await listener.remove_listener(WAKE_CHANNEL, self._on_notify)
            await self.pool.release(listener)

    def _on_notify(self, *_args: object) -> None:
        self.wake.set()

    async def _seconds_to_next(self) -> float:
        wait = await self.pool.fetchval(
            "SELECT extract(epoch FROM min(next_attempt_at) - now()) FROM notifications"
            " WHERE status = 'pending'"
        )
        return (
            IDLE_RECHECK_SECONDS
            if wait is None
            else max(0.0, min(float(wait), IDLE_RECHECK_SECONDS))
        )

    async def send_due(self) -> int:
        """Deliver one batch of due notifications; returns how many rows it handled."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT n.id, n.user_id, n.kind, n.payload, n.attempts, u.openid
                   FROM notifications n JOIN users u ON u.id = n.user_id
                   WHERE n.status = 'pending' AND n.next_attempt_at <= now()
                   ORDER BY n.id LIMIT $1 FOR UPDATE OF n SKIP LOCKED""",
                BATCH,
            )
            for row in rows:
                status, error = await self._deliver(row)
                if status == "retry":
                    await conn.execute(
                        """UPDATE notifications SET attempts = attempts + 1, last_error = $2,
                              next_attempt_at = now() + (2 ^ least(attempts, 10)) * interval '1 s',
                              status = CASE WHEN attempts + 1 >= $3 THEN 'failed'
                                            ELSE 'pending' END
                           WHERE id = $1""",
                        row["id"], error, MAX_ATTEMPTS,
                    )  # fmt: skip
                else:
                    await conn.execute(
                        """UPDATE notifications SET status = $2, last_error = $3,
                                  attempts = attempts + 1,
                                  sent_at = CASE WHEN $2 = 'sent' THEN now() END
                           WHERE id = $1""",
                        row["id"], status, error,
                    )  # fmt: skip
        return len(rows)

    async def _deliver(self, row: asyncpg.Record) -> tuple[str, str | None]:
        frame = {"type": "notice", "id": row["id"], "kind": row["kind"], "data": row["payload"]}
        if row["attempts"] == 0:
            await self.redis.publish(rk.user_channel(row["user_id"]), orjson.dumps(frame))
        template = self.templates.get(row["kind"])
        if template is None:
            return "sent", None
        page, data = subscribe_message(row["kind"], row["payload"])
        try:
            await self.wechat.send_subscribe(row["openid"], template, page, data)
        except MessageRefused as exc:
            return "failed", str(exc)
        except MessageFailed as exc:
            return "retry", str(exc)
        return "sent", None
