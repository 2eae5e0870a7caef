"""HTTP: the host's FAQ rules for the customer-service bot (host token)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import Meta

from livecommerce import keys
from livecommerce.api.contract import Body, Call, Model, to
from livecommerce.errors import NotFound
from livecommerce.support import faq
from livecommerce.support.text import KEYWORD, NON_BLANK

Keyword = Annotated[
    str,
    Meta(min_length=1, max_length=32, pattern=KEYWORD,
         description="Holds a letter or a digit (Latin, CJK, kana, hangul, …): punctuation or "
         "symbols alone would match almost every message"),
]  # fmt: skip
PagePath = Annotated[
    str,
    Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_/.?=&%-]+(?!\n)$",
         description="A mini-program page path, e.g. pages/goods/goods?id=7"),
]  # fmt: skip


class FaqCreate(Body):
    """A FAQ rule: any keyword (Chinese or English; several words = a phrase) triggers it."""

    keywords: Annotated[list[Keyword], Meta(min_length=1, max_length=20)]
    answer: Annotated[str, Meta(min_length=1, max_length=600, pattern=NON_BLANK)]
    page_path: PagePath | None = None
    priority: Annotated[int, Meta(ge=-1000, le=1000, description="Higher wins")] = 0


class Faq(Model):
    id: int
    keywords: list[str]
    answer: str
    page_path: str | None
    priority: int
    created_at: datetime


class FaqList(Model):
    items: list[Faq]


class Deleted(Model):
    deleted: bool


async def create(call: Call[FaqCreate, None]) -> Faq:
    """Add a FAQ rule of the calling host (answered by the bot from the next message on)."""
    b = call.body
    row = await faq.create(
        call.app[keys.PG_POOL], call.host_id, b.keywords, b.answer, b.page_path, b.priority
    )
    return to(Faq, row)


async def list_mine(call: Call[None, None]) -> FaqList:
    """The calling host's FAQ rules, oldest first."""
    rows = await faq.list_for(call.app[keys.PG_POOL], call.host_id)
    return FaqList(items=[to(Faq, r) for r in rows])


async def delete(call: Call[None, None]) -> Deleted:
    """Delete one of the calling host's FAQ rules (404 when it is not theirs)."""
    if not await faq.delete(call.app[keys.PG_POOL], call.host_id, call.id()):
        raise NotFound("no such FAQ rule")
    return Deleted(deleted=True)
