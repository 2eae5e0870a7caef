"""HTTP: human agents of the host's shop — presence, the queue, claim, reply, transfer, close.

Agents act through their host's console (host token); the path names the acting agent
(``/agents/{agent_id}/conversations/{id}/...``), which must be one of the host's (404
otherwise). See docs/support.md for the state machine."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Body, Call, Model, to
from livecommerce.api.types import NO_NUL, Id
from livecommerce.support import agents

State = Literal["bot", "queued", "agent", "closed"]


class AgentCreate(Body):
    """A new agent of the calling host's shop."""

    name: Annotated[str, Meta(min_length=1, max_length=64, pattern=r"\S"), NO_NUL]
    capacity: Annotated[int, Meta(ge=1, le=100, description="Conversations at once")] = 5


class Presence(Body):
    """``online: true`` (the default: an empty body is a heartbeat) renews the agent's presence
    lease (send it every ``support.agent_lease_seconds / 2``); ``false`` signs the agent out."""

    online: bool = True


class AgentReply(Body):
    text: Annotated[str, Meta(min_length=1, max_length=1000, pattern=r"\S"), NO_NUL]


class Transfer(Body):
    to_agent_id: Id


class Agent(Model):
    id: int
    name: str
    capacity: int
    active: Annotated[int, Meta(description="Conversations held now")]
    online_until: datetime | None
    created_at: datetime


class AgentList(Model):
    items: list[Agent]


class Conversation(Model):
    id: int
    openid: str
    state: State
    agent_id: int | None
    queued_at: datetime | None
    session_from: str
    last_goods_id: int | None
    updated_at: datetime


class ConversationList(Model):
    items: list[Conversation]


class Message(Model):
    sender: Literal["buyer", "bot", "agent"]
    kind: str
    content: str
    at: datetime


class OrderBrief(Model):
    id: int
    title: str
    quantity: int
    status: str
    total_fen: int
    created_at: datetime


class History(Model):
    conversation: Conversation
    messages: list[Message]
    orders: list[OrderBrief]


class QueuedReply(Model):
    id: int
    state: Literal["pending"]
    created_at: datetime


async def create_agent(call: Call[AgentCreate, None]) -> Agent:
    """Create an agent account for the calling host's shop (offline until presence)."""
    row = await agents.create(
        call.app[keys.PG_POOL], call.host_id, call.body.name, call.body.capacity
    )
    return to(Agent, row)


async def list_agents(call: Call[None, None]) -> AgentList:
    """The calling host's agents with their load and presence."""
    rows = await agents.list_for(call.app[keys.PG_POOL], call.host_id)
    return AgentList(items=[to(Agent, r) for r in rows])


async def presence(call: Call[Presence, None]) -> Agent:
    """Renew or end an agent's presence; coming online assigns queued conversations to the
    least busy online agents."""
    lease = call.app[keys.SETTINGS].support.agent_lease_seconds
    row = await agents.presence(
        call.app[keys.PG_POOL], call.host_id, call.id(), call.body.online, lease
    )
    return to(Agent, row)


async def queue(call: Call[None, None]) -> ConversationList:
    """Conversations waiting for a human, oldest first."""
    rows = await agents.queue(call.app[keys.PG_POOL])
    return ConversationList(items=[to(Conversation, r) for r in rows])


async def history(call: Call[None, None]) -> History:
    """A conversation with its latest messages and the buyer's recent orders."""
    return to(History, await agents.history(call.app[keys.PG_POOL], call.id()))


async def claim(call: Call[None, None]) -> Conversation:
    """The agent takes a queued conversation (409 when it is not queued or the agent is full).

    Claiming renews the agent's presence lease."""
    lease = call.app[keys.SETTINGS].support.agent_lease_seconds
    row = await agents.claim(
        call.app[keys.PG_POOL], call.host_id, call.id("agent_id"), call.id(), lease
    )
    return to(Conversation, row)


async def reply(call: Call[AgentReply, None]) -> QueuedReply:
    """Send the buyer a text from the agent holding the conversation (through WeChat's send
    API, within the buyer's reply window: a reply beyond it is recorded, not sent)."""
    b = call.body
    row = await agents.reply(
        call.app[keys.PG_POOL], call.host_id, call.id("agent_id"), call.id(), b.text
    )
    call.app[keys.SUPPORT].worker.wake(0)
    return to(QueuedReply, row)


async def transfer(call: Call[Transfer, None]) -> Conversation:
    """Hand a conversation the agent holds to another online agent of the host."""
    b = call.body
    row = await agents.transfer(
        call.app[keys.PG_POOL], call.host_id, call.id("agent_id"), call.id(), b.to_agent_id
    )
    return to(Conversation, row)


async def close(call: Call[None, None]) -> Conversation:
    """Close a conversation the agent holds (the buyer's next message goes to the bot)."""
    row = await agents.close(call.app[keys.PG_POOL], call.host_id, call.id("agent_id"), call.id())
    return to(Conversation, row)
