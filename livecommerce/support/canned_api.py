"""HTTP: the shop's canned replies, kept by the host (host token/session) and by the shop's
agents (agent session), used from the agent workspace. Another shop's reply is a 404."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Body, Call, Model, to
from livecommerce.support import agents, canned
from livecommerce.support.faq_api import Deleted  # one model for both deletions
from livecommerce.support.text import NON_BLANK


class CannedBody(Body):
    """A canned reply: a short title to pick it by and the text it inserts."""

    title: Annotated[str, Meta(min_length=1, max_length=60, pattern=NON_BLANK)]
    body: Annotated[str, Meta(min_length=1, max_length=1000, pattern=NON_BLANK)]


class Canned(Model):
    id: int
    title: str
    body: str
    created_at: datetime
    updated_at: datetime


class CannedList(Model):
    items: list[Canned]


async def _shop(call: Call[Any, Any]) -> int:
    """The caller's shop: the host, or the agent's host."""
    if call.claims is not None and call.claims.kind == "agent":
        row = await agents.get(call.app[keys.PG_POOL], call.agent_id)
        host: int = row["host_id"]
        return host
    return call.host_id


async def list_(call: Call[None, None]) -> CannedList:
    """The shop's canned replies, by title."""
    rows = await canned.list_for(call.app[keys.PG_POOL], await _shop(call))
    return CannedList(items=[to(Canned, r) for r in rows])


async def create(call: Call[CannedBody, None]) -> Canned:
    """Add a canned reply to the shop (409 ``too_many_canned`` past 200)."""
    b = call.body
    return to(
        Canned, await canned.create(call.app[keys.PG_POOL], await _shop(call), b.title, b.body)
    )


async def update(call: Call[CannedBody, None]) -> Canned:
    """Replace a canned reply's title and text (404 another shop's)."""
    b, pool = call.body, call.app[keys.PG_POOL]
    return to(Canned, await canned.update(pool, await _shop(call), call.id(), b.title, b.body))


async def delete(call: Call[None, None]) -> Deleted:
    """Delete a canned reply (404 another shop's)."""
    await canned.delete(call.app[keys.PG_POOL], await _shop(call), call.id())
    return Deleted(deleted=True)


# The agent page's routes (agent session): the same operations under /api/agent/canned.


async def agent_list(call: Call[None, None]) -> CannedList:
    """The agent's shop's canned replies, by title."""
    return await list_(call)


async def agent_create(call: Call[CannedBody, None]) -> Canned:
    """Add a canned reply to the agent's shop (409 ``too_many_canned`` past 200)."""
    return await create(call)


async def agent_update(call: Call[CannedBody, None]) -> Canned:
    """Replace a canned reply of the agent's shop (404 another shop's)."""
    return await update(call)


async def agent_delete(call: Call[None, None]) -> Deleted:
    """Delete a canned reply of the agent's shop (404 another shop's)."""
    return await delete(call)
