"""Automatic replies: what the bot answers a buyer's message (decided inside the inbox
transaction, sent after the acknowledgement by :mod:`livecommerce.support.sender`)."""

from __future__ import annotations

import asyncpg

from livecommerce.config import Settings
from livecommerce.support.inbox import Decide, Decision
from livecommerce.support.push import Incoming


def decider(pool: asyncpg.Pool, settings: Settings) -> Decide:
    """The bot's decide function for this app's settings."""

    async def decide(
        conn: asyncpg.Connection, msg: Incoming, conversation: asyncpg.Record
    ) -> Decision:
        return Decision("stored")

    return decide
