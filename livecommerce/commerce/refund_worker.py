"""The background task that asks WeChat Pay for the refunds we owe and follows them up.

Each round claims due refunds (``next_attempt_at <= now()``) with ``FOR UPDATE SKIP LOCKED`` and
a lease (``next_attempt_at`` pushed forward before the network call), so several nodes never
send one refund at the same moment — and if they did, the fixed ``out_refund_no`` makes WeChat
Pay answer the same refund. A ``pending`` refund is requested; a ``processing`` one whose
notification has not come is queried (the fallback). Transient failures (network, 5xx,
SYSTEM_ERROR) and refusals WeChat may lift (NOT_ENOUGH: the merchant balance) are retried with
exponential backoff from ``wechatpay.refund_retry_seconds`` up to
``wechatpay.refund_retry_max_seconds``.

It sleeps until the earliest due refund and is woken by :meth:`RefundWorker.poke`: on this node
directly, and on every node by the ``pg_notify('lc_refunds')`` that each refund's transaction
sends, which :meth:`RefundWorker.listener` LISTENs for on a dedicated connection (reconnected
when lost: :mod:`livecommerce.pglisten`). The sleep is still capped at ``max_sleep_seconds``
(``MAX_SLEEP_SECONDS``), the fallback while the LISTEN connection is down.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from livecommerce.aio import check_cancelled, wait_event
from livecommerce.commerce import refunds
from livecommerce.commerce.orders import out_trade_no
from livecommerce.commerce.payclient import PayError, PayNotFound, WechatPayClient
from livecommerce.config import WechatPayConfig
from livecommerce.pglisten import Listener

log = logging.getLogger("livecommerce.refunds")
MAX_SLEEP_SECONDS = 2.0
LEASE_SECONDS = 60.0
NOTIFY_PATH = "/api/pay/wechat/notify"
REFUND_NOTIFY_PATH = "/api/pay/wechat/refund-notify"
_STATES = {"PROCESSING": "processing", "SUCCESS": "success", "ABNORMAL": "abnormal",
           "CLOSED": "closed"}  # fmt: skip


def wechat_state(value: object) -> str | None:
    """Our state for WeChat's refund ``status`` / ``refund_status`` (None: unknown)."""
    return _STATES.get(value) if isinstance(value, str) else None


class RefundWorker:
    def __init__(
        self, pool: asyncpg.Pool, client: WechatPayClient, cfg: WechatPayConfig, batch: int = 50
    ) -> None:
        self._pool = pool
        self._client = client
        self._cfg = cfg
        self._batch = batch
        self._wake = asyncio.Event()
        self.max_sleep_seconds = MAX_SLEEP_SECONDS

    def poke(self) -> None:
        """A refund was created (on this node, or NOTIFYed by any): look now."""
        self._wake.set()

    def listener(self, database_url: str) -> Listener:
        """The LISTEN on ``lc_refunds`` that pokes this worker (run it beside :meth:`run`)."""
        return Listener(database_url, refunds.WAKE_CHANNEL, self.poke)

    async def run(self) -> None:
        while True:
            check_cancelled()
            self._wake.clear()
            try:
                await self.process()
                delay = await self._next_due()
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                log.warning("refund round failed (%s); retrying", type(exc).__name__)
                delay = self.max_sleep_seconds
            await wait_event(self._wake, min(max(delay, 0.05), self.max_sleep_seconds))

    async def _next_due(self) -> float:
        value = await self._pool.fetchval(
            """SELECT EXTRACT(EPOCH FROM min(next_attempt_at) - now())::float8 FROM refunds
               WHERE status IN ('pending', 'processing')"""
        )
        return self.max_sleep_seconds if value is None else float(value)

    async def process(self) -> int:
        """One round: request or query every due refund; the number handled."""
        rows = await self._pool.fetch(
            """UPDATE refunds r SET next_attempt_at = now() + make_interval(secs => $2)
               FROM (SELECT id FROM refunds
                     WHERE status IN ('pending', 'processing') AND next_attempt_at <= now()
                     ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
               WHERE r.id = due.id
               RETURNING r.id, r.order_id, r.transaction_id, r.amount_fen, r.payment_fen,
                         r.reason, r.status, r.attempts,
                         (SELECT pay_notify_url FROM orders o WHERE o.id = r.order_id)
                             AS pay_notify_url""",
            self._batch,
            LEASE_SECONDS,
        )
        for row in rows:
            await self._handle(row)
        return len(rows)

    def _notify_url(self, row: asyncpg.Record) -> str:
        if self._cfg.refund_notify_url:
            return self._cfg.refund_notify_url
        url = row["pay_notify_url"] or ""
        return url.removesuffix(NOTIFY_PATH) + REFUND_NOTIFY_PATH if url else ""

    async def _handle(self, row: asyncpg.Record) -> None:
        number = refunds.out_refund_no(row["id"])
        try:
            if row["status"] == "pending":
                answer = await self._client.refund(
                    out_refund_no=number,
                    transaction_id=row["transaction_id"],
                    refund_fen=row["amount_fen"],
                    total_fen=row["payment_fen"],
                    reason=row["reason"],
                    notify_url=self._notify_url(row),
                )
            else:
                answer = await self._client.query_refund(number)
        except PayNotFound as exc:
            if row["status"] == "processing":
                # WeChat lost it (or never had it): ask again, same number.
                await self._pool.execute(
                    "UPDATE refunds SET status = 'pending' WHERE id = $1 AND status = 'processing'",
                    row["id"],
                )
            await self._retry(row, exc)
            return
        except PayError as exc:
            await self._retry(row, exc)
            return
        await self.apply(row["id"], answer, order_id=row["order_id"])
        if row["status"] == "processing" or wechat_state(answer.get("status")) == "processing":
            # Still processing: query again later (the notification usually comes first).
            await self._pool.execute(
                """UPDATE refunds SET attempts = attempts + 1,
                          next_attempt_at = now() + make_interval(secs => $2)
                   WHERE id = $1 AND status = 'processing'""",
                row["id"],
                self._backoff(row["attempts"]),
            )

    async def apply(self, refund_id: int, answer: dict[str, Any], *, order_id: int) -> bool:
        """Record what WeChat said of a refund (an answer, a query or a notification)."""
        state = wechat_state(answer.get("status", answer.get("refund_status")))
        if state is None:
            log.warning("refund %d: unknown WeChat status %r", refund_id, answer.get("status"))
            return False
        refund_id_wx = answer.get("refund_id")
        wx_id = refund_id_wx if isinstance(refund_id_wx, str) else None
        closed = None
        async with self._pool.acquire() as conn:
            if state != "processing":
                await refunds.set_state(conn, refund_id, "processing", None)
            if state == "closed":
                closed = await refunds.close(conn, refund_id, wx_id, reissue_delay=self._backoff)
                moved = closed is not None
            else:
                moved = await refunds.set_state(conn, refund_id, state, wx_id)
        if closed is not None:
            log.error("%s", closed.describe())
            if closed.reissue_id is not None:
                self.poke()
        if moved and state == "abnormal":
            log.error(
                "refund %d of order %d is ABNORMAL (the buyer's account cannot take it): "
                "handle it in the merchant platform",
                refund_id,
                order_id,
            )
        return moved

    def _backoff(self, attempts: int) -> float:
        return float(
            min(
                self._cfg.refund_retry_seconds * 2 ** min(attempts, 20),
                self._cfg.refund_retry_max_seconds,
            )
        )

    async def _retry(self, row: asyncpg.Record, exc: PayError) -> None:
        delay = self._backoff(row["attempts"])
        log.warning(
            "refund %d (order %s) attempt %d failed: %s; next in %.0f s",
            row["id"],
            out_trade_no(row["order_id"]),
            row["attempts"] + 1,
            exc,
            delay,
        )
        await self._pool.execute(
            """UPDATE refunds SET attempts = attempts + 1, last_error = $2,
                      next_attempt_at = now() + make_interval(secs => $3)
               WHERE id = $1 AND status IN ('pending', 'processing')""",
            row["id"],
            str(exc)[:200],
            delay,
        )
