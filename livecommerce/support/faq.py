"""FAQ rules and keyword matching with Chinese word segmentation (jieba).

A rule matches a message when any of its keywords does. A one-word keyword must be a *word* of
the message (jieba's search-mode segmentation for Chinese, whole words for English: "ship" does
not match "relationship"); a keyword of several words must appear as a phrase. The matching rule
with the highest priority wins (then the one with more keyword hits, then the oldest).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import jieba

_lock = threading.Lock()
_ready = False
_SPACE = re.compile(r"\s+")


def init() -> None:
    """Load jieba's dictionary once (~1 s; call off the event loop, e.g. ``to_thread``)."""
    global _ready
    with _lock:
        if not _ready:
            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            _ready = True


def words(text: str) -> set[str]:
    """The words of ``text``: lower-cased, jieba search-mode segments, blanks dropped."""
    init()
    return {w for w in jieba.lcut_for_search(text.lower()) if w.strip()}


def keyword_hits(keyword: str, text: str, text_words: set[str]) -> bool:
    """Whether ``keyword`` occurs in ``text`` as a word (one segment) or a phrase (several)."""
    kw = _SPACE.sub(" ", keyword.strip().lower())
    if not kw:
        return False
    parts = [w for w in jieba.lcut(kw) if w.strip()]
    if len(parts) <= 1:
        return kw in text_words
    return all(p in text_words for p in parts) and kw in _SPACE.sub(" ", text.lower())


@dataclass(frozen=True, slots=True)
class Rule:
    id: int
    keywords: tuple[str, ...]
    answer: str
    page_path: str | None
    priority: int


def best(rules: Sequence[Rule], text: str) -> Rule | None:
    """The winning rule for ``text`` or None."""
    text_words = words(text)
    scored = []
    for rule in rules:
        hits = sum(keyword_hits(k, text, text_words) for k in rule.keywords)
        if hits:
            scored.append((-rule.priority, -hits, rule.id, rule))
    return min(scored)[3] if scored else None


async def rules(conn: asyncpg.Connection | asyncpg.Pool, host_id: int | None) -> list[Rule]:
    """The rules that may answer a conversation of shop ``host_id``: rules without a shop and
    that shop's. One shop's rules never answer another shop's buyers (a host could otherwise
    take every buyer's question with a high priority). Without a shop (``None``): the one
    shop's rules when only one shop has any (a single-shop deployment), else none of them."""
    rows = await conn.fetch(
        "SELECT id, host_id, keywords, answer, page_path, priority FROM support_faq ORDER BY id"
    )
    shops = {r["host_id"] for r in rows if r["host_id"] is not None}
    if host_id is None and len(shops) == 1:
        host_id = shops.pop()
    return [
        Rule(r["id"], tuple(r["keywords"]), r["answer"], r["page_path"], r["priority"])
        for r in rows
        if r["host_id"] is None or r["host_id"] == host_id
    ]


async def create(
    pool: asyncpg.Pool, host_id: int, keywords: list[str], answer: str, page_path: str | None,
    priority: int,
) -> dict[str, Any]:  # fmt: skip
    row = await pool.fetchrow(
        """INSERT INTO support_faq (host_id, keywords, answer, page_path, priority)
           VALUES ($1, $2, $3, $4, $5) RETURNING *""",
        host_id, keywords, answer, page_path, priority,
    )  # fmt: skip
    return dict(row)


async def list_for(pool: asyncpg.Pool, host_id: int) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT * FROM support_faq WHERE host_id = $1 ORDER BY id", host_id)
    return [dict(r) for r in rows]


async def delete(pool: asyncpg.Pool, host_id: int, faq_id: int) -> bool:
    """Delete the host's rule; False when there is no such rule of theirs."""
    done = await pool.execute(
        "DELETE FROM support_faq WHERE id = $1 AND host_id = $2", faq_id, host_id
    )
    return bool(done != "DELETE 0")
