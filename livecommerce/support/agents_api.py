"""HTTP, host side: the host's customer-service agents (accounts of their shop) and the shop's
queue. Agents act for themselves with their own session (:mod:`agent_api`). The response
models here are shared by the agent side and the feed. See docs/support.md."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Body, Call, Model, to
from livecommerce.api.types import NO_NUL
from livecommerce.console.passwords import MAX_LENGTH, MIN_LENGTH
from livecommerce.support import agent_accounts, agents
from livecommerce.support.text import NON_BLANK

State = Literal["bot", "queued", "agent", "closed"]
AgentName = Annotated[str, Meta(min_length=1, max_length=64, pattern=NON_BLANK)]
Login = Annotated[
    str,
    Meta(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9._@-]+(?!\n)$",
         description="The agent's sign-in name (unique across agents)"),
]  # fmt: skip
NewPassword = Annotated[
    str, Meta(min_length=MIN_LENGTH, max_length=MAX_LENGTH, description="At least 8 characters"),
    NO_NUL,
]  # fmt: skip
Capacity = Annotated[int, Meta(ge=1, le=100, description="Conversations at once")]


class AgentCreate(Body):
    """A new agent account of the calling host's shop."""

    name: AgentName
    login: Login
    password: NewPassword
    capacity: Capacity = 5


class AgentUpdate(Body):
    """Change an agent: any of name, capacity, password (absent = unchanged). A new password
    ends the sessions the agent signed in with before (401 ``session_revoked``)."""

    name: AgentName | None = None
    capacity: Capacity | None = None
    password: NewPassword | None = None


class Agent(Model):
    id: int
    name: str
    login: str | None
    capacity: int
    active: Annotated[int, Meta(description="Conversations held now")]
    online: Annotated[bool, Meta(description="The presence lease is running")]
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


async def create_agent(call: Call[AgentCreate, None]) -> Agent:
    """Create an agent account for the calling host's shop (409 ``login_taken``); the agent
    signs in at ``/agent`` with the login and password."""
    b = call.body
    row = await agent_accounts.create(
        call.app[keys.PG_POOL], call.host_id, b.name, b.login, b.password, b.capacity
    )
    return to(Agent, row)


async def update_agent(call: Call[AgentUpdate, None]) -> Agent:
    """Change one of the host's agents (404 another shop's; 409 ``capacity_below_load``).

    A new ``password`` ends every session the agent signed in with before, on every node at
    once: their requests answer 401 ``session_revoked`` and their open feed sockets close (1008
    ``session_revoked``); the agent signs in again with the new password. A name or capacity
    alone ends nothing."""
    b = call.body
    row = await agent_accounts.update(
        call.app[keys.PG_POOL], call.host_id, call.id(),
        name=b.name, capacity=b.capacity, password=b.password,
    )  # fmt: skip
    if b.password is not None:
        await call.app[keys.SUPPORT].feed.publish(
            call.host_id, "revoked", agent_id=row["id"], version=row["password_version"]
        )
    return to(Agent, row)


class AgentDeleted(Model):
    deleted: Literal[True]
    requeued: Annotated[
        list[int], Meta(description="Conversations the agent held or the shop's queue moved")
    ]


async def delete_agent(call: Call[None, None]) -> AgentDeleted:
    """Delete one of the host's agents (404 another shop's or gone): the conversations they
    held go back to the shop's queue (and on to its other online agents); their sessions and
    open sockets stop at once (the feed closes 1008); the login can be used again."""
    app = call.app
    moved = await agent_accounts.delete(app[keys.PG_POOL], call.host_id, call.id())
    feed = app[keys.SUPPORT].feed
    await feed.publish(call.host_id, "revoked", agent_id=call.id())
    await feed.publish(call.host_id, "changed", moved)
    await feed.publish(call.host_id, "agents")
    return AgentDeleted(deleted=True, requeued=moved)


async def list_agents(call: Call[None, None]) -> AgentList:
    """The calling host's agents with their load and presence."""
    rows = await agents.list_for(call.app[keys.PG_POOL], call.host_id)
    return AgentList(items=[to(Agent, r) for r in rows])


async def queue(call: Call[None, None]) -> ConversationList:
    """The host's shop's conversations waiting for a human, oldest first."""
    rows = await agents.queue(call.app[keys.PG_POOL], call.host_id)
    return ConversationList(items=[to(Conversation, r) for r in rows])
