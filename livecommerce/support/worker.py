"""This node's customer-service worker: processes inbox rows after the acknowledgement and
sends the replies they decided.

The push handler calls :meth:`SupportWorker.wake` with a new row id (no await: the ``success``
answer is not held up). ``CONSUMERS`` tasks take ids from a local queue; every
``sweep_seconds`` one of them also picks up rows and replies left by a crash, a restart or
another node (exactly once comes from :func:`inbox.process`, not from who picked the id up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from livecommerce.aio import check_cancelled
from livecommerce.support import agents, inbox, sender
from livecommerce.support.cs_client import CsClient
from livecommerce.support.feed import Feed
from livecommerce.support.inbox import Decide, Decision

log = logging.getLogger("livecommerce.support")
# One consumer: processing is deferred work and must not starve the acknowledgements (WeChat
# waits 5 s for those); a backlog drains after a burst.
CONSUMERS = 1
QUEUE_MAX = 10_000


class SupportWorker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        client: CsClient,
        decide: Decide,
        *,
        sweep_seconds: float,
        send_attempts: int,
        send_backoff: float,
        agent_grace: float = 60.0,
        follow_up: sender.FollowUp | None = None,
    ) -> None:
        self.pool, self.client, self.decide = pool, client, decide
        self.sweep_seconds = sweep_seconds
        self.send_attempts, self.send_backoff = send_attempts, send_backoff
        self.agent_grace = agent_grace
        self.follow_up = follow_up
        self.queue: asyncio.Queue[int] = asyncio.Queue(QUEUE_MAX)
        self.processed = 0
        self.feed: Feed | None = None  # set by the app: agents hear of hand-offs and messages

    def wake(self, inbox_id: int) -> None:
        """Process ``inbox_id`` soon (0: just send due replies; a full queue leaves it to the
        sweep)."""
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(inbox_id)

    async def run(self) -> None:
        """Run the consumers until cancelled."""
        async with asyncio.TaskGroup() as group:
            for i in range(CONSUMERS):
                group.create_task(self._consume(sweeper=i == 0), name=f"support-consumer-{i}")

    async def _consume(self, sweeper: bool) -> None:
        while True:
            check_cancelled()
            try:
                async with asyncio.timeout(self.sweep_seconds):
                    inbox_id = await self.queue.get()
            except TimeoutError:
                if sweeper:
                    await self._guard(self.sweep())
                continue
            await self._guard(self.handle(inbox_id))

    async def handle(self, inbox_id: int) -> None:
        """Process one row, then send what is due."""
        if inbox_id:
            await self._process(inbox_id)
        await sender.send_due(
            self.pool, self.client, self.send_attempts, self.send_backoff,
            follow_up=self.follow_up, on_final=self._reply_final,
        )  # fmt: skip

    async def sweep(self) -> None:
        """Re-queue conversations of agents gone for good, process rows nobody processed, then
        send due replies (retries included)."""
        moved = await agents.requeue_abandoned(self.pool, self.agent_grace)
        if self.feed is not None:
            for host_id, ids in moved.items():
                await self.feed.publish(host_id, "changed", ids)
        for inbox_id in await inbox.pending(self.pool):
            await self._process(inbox_id)
        await sender.send_due(
            self.pool, self.client, self.send_attempts, self.send_backoff,
            follow_up=self.follow_up, on_final=self._reply_final,
        )  # fmt: skip

    async def _process(self, inbox_id: int) -> None:
        decision = await inbox.process(self.pool, inbox_id, self.decide)
        if decision is None:
            return
        self.processed += 1
        if self.feed is not None:
            await self._tell_agents(self.feed, inbox_id, decision)

    async def _reply_final(self, reply_id: int, openid: str) -> None:
        """An agent's reply was sent or refused: its conversation's shop sees the state (a
        reply waiting for a retry is not final yet; the frame then says ``pending``)."""
        if self.feed is None:
            return
        conv = await self.pool.fetchrow(
            "SELECT id, host_id FROM support_conversations WHERE openid = $1", openid
        )
        if conv is not None:
            await self.feed.publish(conv["host_id"], "message", [conv["id"]], reply_id=reply_id)

    async def _tell_agents(self, feed: Feed, inbox_id: int, decision: Decision) -> None:
        """A hand-off or a buyer message while humans hold the conversation: tell its shop."""
        if decision.outcome not in ("handoff", "to_agent"):
            return
        conv = await self.pool.fetchrow(
            """SELECT c.id, c.host_id FROM support_inbox i
               JOIN support_conversations c ON c.openid = i.openid WHERE i.id = $1""",
            inbox_id,
        )
        if conv is None:
            return
        await feed.publish(conv["host_id"], "changed", [conv["id"]])
        await feed.publish(conv["host_id"], "message", [conv["id"]], inbox_id=inbox_id)

    async def _guard(self, work: object) -> None:
        try:
            await work  # type: ignore[misc]
        except asyncio.CancelledError:
            raise
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("support worker: %s (the sweep retries)", type(exc).__name__)
        except Exception:
            log.exception("support worker: unexpected error (the sweep retries)")
