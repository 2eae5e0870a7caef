"""HTTP, agent side: a signed-in agent's presence, their shop's queue, their conversations,
history, claim, reply, transfer, close (agent session cookie + CSRF, or an agent bearer token).

Everything is limited to the agent's shop: another shop's conversation or agent is a 404.
Each change is published to the shop's agents' sockets (:mod:`livecommerce.support.feed`)
after it committed. See docs/support.md for the state machine and the frames."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Body, Call, Model, to
from livecommerce.api.types import Id
from livecommerce.support import agents, workspace
from livecommerce.support.agents_api import Agent, AgentList, Conversation, ConversationList
from livecommerce.support.text import NON_BLANK


class Presence(Body):
    """``online: true`` (the default: an empty body is a heartbeat) renews the presence lease
    (the agent page's socket renews it by itself); ``false`` signs the agent out of the queue
    (their conversations are re-queued by the next sweep)."""

    online: bool = True


class AgentReply(Body):
    text: Annotated[str, Meta(min_length=1, max_length=1000, pattern=NON_BLANK)]


class Transfer(Body):
    to_agent_id: Id


class Message(Model):
    sender: Literal["buyer", "bot", "agent"]
    kind: str
    content: str
    state: Annotated[
        str,
        Meta(
            description="received (buyer), or a reply's pending/sent/skipped_quota/refused/failed"
        ),
    ]
    at: datetime


class OrderBrief(Model):
    id: int
    title: str
    quantity: int
    status: str
    total_fen: int
    created_at: datetime


class GoodsBrief(Model):
    id: int
    title: str
    price_fen: int
    stock: int
    tapped_at: datetime


class History(Model):
    conversation: Conversation
    messages: list[Message]
    orders: Annotated[list[OrderBrief], Meta(description="The buyer's latest orders in this shop")]
    goods: Annotated[
        list[GoodsBrief], Meta(description="This shop's goods the buyer tapped lately")
    ]


class QueuedReply(Model):
    id: int
    state: Literal["pending"]
    created_at: datetime
    window_left: Annotated[int, Meta(description="Replies WeChat still allows in this window")]


async def _shop(call: Call[Any, Any]) -> int:
    """The calling agent's shop (404 ``agent_not_found`` when the account is gone)."""
    row = await agents.get(call.app[keys.PG_POOL], call.agent_id)
    host: int = row["host_id"]
    return host


async def presence(call: Call[Presence, None]) -> Agent:
    """Renew or end the calling agent's presence; coming online assigns the shop's queued
    conversations to its least busy online agents."""
    app = call.app
    lease = app[keys.SETTINGS].support.agent_lease_seconds
    row, moved = await agents.presence(app[keys.PG_POOL], call.agent_id, call.body.online, lease)
    feed = app[keys.SUPPORT].feed
    await feed.publish(row["host_id"], "changed", moved)
    await feed.publish(row["host_id"], "agents")
    return to(Agent, row)


async def queue(call: Call[None, None]) -> ConversationList:
    """The agent's shop's conversations waiting for a human, oldest first."""
    rows = await agents.queue(call.app[keys.PG_POOL], await _shop(call))
    return ConversationList(items=[to(Conversation, r) for r in rows])


async def mine(call: Call[None, None]) -> ConversationList:
    """The conversations the calling agent holds now."""
    rows = await agents.held_by(call.app[keys.PG_POOL], call.agent_id)
    return ConversationList(items=[to(Conversation, r) for r in rows])


async def colleagues(call: Call[None, None]) -> AgentList:
    """The agents of the caller's shop (load, presence): the transfer targets."""
    rows = await agents.list_for(call.app[keys.PG_POOL], await _shop(call))
    return AgentList(items=[to(Agent, r) for r in rows])


async def history(call: Call[None, None]) -> History:
    """A conversation of the agent's shop with its latest messages, the buyer's recent orders
    and goods tapped in this shop (404 another shop's)."""
    pool = call.app[keys.PG_POOL]
    return to(History, await workspace.history(pool, await _shop(call), call.id()))


async def claim(call: Call[None, None]) -> Conversation:
    """Take a queued conversation of the shop (409 ``not_queued`` / ``agent_full``); renews
    the agent's presence lease."""
    app = call.app
    lease = app[keys.SETTINGS].support.agent_lease_seconds
    row = await agents.claim(app[keys.PG_POOL], call.agent_id, call.id(), lease)
    await app[keys.SUPPORT].feed.publish(row["host_id"], "changed", [row["id"]])
    return to(Conversation, row)


async def reply(call: Call[AgentReply, None]) -> QueuedReply:
    """Send the buyer a text (through WeChat's send API). Refused up front with 409
    ``window_closed`` / ``quota_used`` when WeChat's reply window would refuse it; 409
    ``not_held`` when the caller does not hold the conversation."""
    app, conv_id = call.app, call.id()
    row = await workspace.reply(app[keys.PG_POOL], call.agent_id, conv_id, call.body.text)
    app[keys.SUPPORT].worker.wake(0)
    await app[keys.SUPPORT].feed.publish(
        await _shop(call), "message", [conv_id], reply_id=row["id"]
    )
    return to(QueuedReply, row)


async def transfer(call: Call[Transfer, None]) -> Conversation:
    """Hand a held conversation to another online agent of the shop (404 not the shop's agent;
    409 ``agent_offline`` / ``agent_full`` / ``not_held``)."""
    app = call.app
    row = await agents.transfer(app[keys.PG_POOL], call.agent_id, call.id(), call.body.to_agent_id)
    await app[keys.SUPPORT].feed.publish(row["host_id"], "changed", [row["id"]])
    return to(Conversation, row)


async def close(call: Call[None, None]) -> Conversation:
    """Close a held conversation (the buyer's next message goes to the bot); the freed seat
    takes the shop's next queued one."""
    app = call.app
    row, assigned = await agents.close(app[keys.PG_POOL], call.agent_id, call.id())
    await app[keys.SUPPORT].feed.publish(row["host_id"], "changed", [row["id"], *assigned])
    return to(Conversation, row)
