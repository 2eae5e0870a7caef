"""Sends decided replies through the customer-service API, within the buyer's window.

Each pending reply is claimed with a lease (so one node sends it) and, in the same transaction,
takes one reply of the buyer's window in the ledger *before* calling WeChat (a reply that would
exceed it is ``skipped_quota``, never sent), and ends ``sent``, ``refused`` (a final errcode:
45015 and 45047 also correct the ledger; never retried) or, after ``attempts`` transient
failures with backoff, ``failed``. A reply skipped because the window has *closed* can
trigger one subscribe message per closed window ("an answer is waiting",
``support.waiting_template_id``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import asyncpg

from livecommerce.support import ledger
from livecommerce.support.cs_client import CsClient, SendFailed

log = logging.getLogger("livecommerce.support")
LEASE_SECONDS = 30


# follow_up(openid): tell a buyer whose window has closed that an answer is waiting.
FollowUp = Callable[[str], Awaitable[None]]
# on_final(reply_id, openid): an agent's reply reached its final state (the agents' feed).
OnFinal = Callable[[int, str], Awaitable[None]]


async def send_due(
    pool: asyncpg.Pool, client: CsClient, attempts: int, backoff: float, limit: int = 50,
    follow_up: FollowUp | None = None, on_final: OnFinal | None = None,
) -> int:  # fmt: skip
    """Send up to ``limit`` due replies; returns how many were handled (any outcome).
    ``on_final`` hears of each agent reply that ended (sent, skipped, refused, failed)."""
    handled = 0
    while handled < limit:
        # Claim and take from the window in one transaction: an agent's reply check
        # (workspace.reply) sees a claimed reply either still pending or already counted.
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """UPDATE support_replies SET claimed_until = now() + make_interval(secs => $1),
                       attempts = attempts + 1
                   WHERE id = (SELECT id FROM support_replies
                               WHERE state = 'pending' AND (claimed_until IS NULL
                                                            OR claimed_until < now())
                               ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
                   RETURNING id, openid, body, attempts, kind""",
                LEASE_SECONDS,
            )
            if row is None:
                return handled
            taken = await ledger.take(conn, row["openid"])
        handled += 1
        await _send_one(pool, client, row, taken, attempts, backoff, follow_up)
        if on_final is not None and row["kind"] == "agent":
            await on_final(row["id"], row["openid"])
    return handled


async def _send_one(
    pool: asyncpg.Pool, client: CsClient, row: asyncpg.Record, taken: bool, attempts: int,
    backoff: float, follow_up: FollowUp | None,
) -> None:  # fmt: skip
    reply_id, openid = row["id"], row["openid"]
    if not taken:
        log.info("reply %d to %s not sent: reply window closed or used up", reply_id, openid[:8])
        await _finish(pool, reply_id, "skipped_quota", None)
        if follow_up is not None and await ledger.claim_follow_up(pool, openid):
            await follow_up(openid)
        return
    try:
        errcode = await client.send({"touser": openid, **row["body"]})
    except SendFailed as exc:
        await ledger.give_back(pool, openid)
        if row["attempts"] >= attempts:
            log.warning("reply %d failed after %d attempts: %s", reply_id, row["attempts"], exc)
            await _finish(pool, reply_id, "failed", None)
        else:
            delay = backoff * 2 ** (row["attempts"] - 1)
            await pool.execute(
                """UPDATE support_replies SET claimed_until = now() + make_interval(secs => $2)
                   WHERE id = $1""",
                reply_id, delay,
            )  # fmt: skip
        return
    if errcode == 0:
        await _finish(pool, reply_id, "sent", 0)
        return
    log.warning("reply %d refused by WeChat: errcode %d (not retried)", reply_id, errcode)
    await ledger.wechat_says(pool, openid, errcode)
    await _finish(pool, reply_id, "refused", errcode)


async def _finish(pool: asyncpg.Pool, reply_id: int, state: str, errcode: int | None) -> None:
    await pool.execute(
        """UPDATE support_replies SET state = $2, errcode = $3, claimed_until = NULL,
               sent_at = CASE WHEN $2 = 'sent' THEN now() END
           WHERE id = $1""",
        reply_id, state, errcode,
    )  # fmt: skip
