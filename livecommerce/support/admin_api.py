"""HTTP: the admin's view of conversations no shop could be derived for (the unscoped queue),
and giving one to a shop. Admin token, as the other admin endpoints (``security.admin_token``,
``route(..., admin=True)``; a token is 403 ``admin_disabled`` when none is configured)."""

from __future__ import annotations

from livecommerce import keys
from livecommerce.api.contract import Body, Call, to
from livecommerce.api.types import Id
from livecommerce.support import agents
from livecommerce.support.agents_api import Conversation, ConversationList


class ShopChoice(Body):
    """The shop (host id) the conversation belongs to."""

    host_id: Id


async def unscoped(call: Call[None, None]) -> ConversationList:
    """Queued conversations with no shop (no room, goods or order of a shop in the chat, no
    ``support.default_host_id``), oldest first."""
    rows = await agents.unscoped(call.app[keys.PG_POOL])
    return ConversationList(items=[to(Conversation, r) for r in rows])


async def set_shop(call: Call[ShopChoice, None]) -> Conversation:
    """Give an unscoped conversation to a shop; a queued one goes to that shop's agents (404 no
    such conversation or host, 409 ``already_scoped``)."""
    app, host = call.app, call.body.host_id
    row, assigned = await agents.set_shop(app[keys.PG_POOL], call.id(), host)
    await app[keys.SUPPORT].feed.publish(host, "changed", [row["id"], *assigned])
    return to(Conversation, row)
