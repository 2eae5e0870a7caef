"""Automatic replies that know the buyer (decided inside the inbox transaction, sent after the
acknowledgement by :mod:`livecommerce.support.sender`).

In order, for a text message while the bot holds the conversation:

1. "人工" / "human" / "agent" / "转人工" -> hand-off to a human (state ``queued``);
2. an order number (``LC0000000000000042``, "订单 42", "order #42") -> that order's status,
   items, carrier and tracking number, **only if it is the sender's** (otherwise the same
   "not found" as for an order that does not exist);
3. "我的订单" / "my orders" -> the sender's latest orders and their states;
4. "退款" / "refund" -> the refund state of their latest refundable order and how to ask;
5. "还有货吗" / "库存" / "in stock" -> stock of the goods they came from, last sent as a card or
   most recently tapped in a live room, whichever was latest;
6. "拼团" / "group" -> their open group: "N joined, M to go, ends at ...";
7. FAQ rules (:mod:`livecommerce.support.faq`) of the conversation's shop (:func:`shop.guess`);
8. otherwise a miss: "didn't get that"; ``support.handoff_after_misses`` misses in a row hand
   the buyer to a human.

Chinese questions are answered in Chinese, others in English. While the conversation is queued
or with an agent the bot stays silent. Entering the session from goods remembers the goods.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg

from livecommerce.config import Settings, SupportConfig
from livecommerce.support import agents, faq, shop
from livecommerce.support.inbox import Decide, Decision, Reply
from livecommerce.support.push import Incoming

CST = timezone(timedelta(hours=8))
_CJK = re.compile(r"[\u4e00-\u9fff]")
# An order number: LC + 16 digits, "订单 42" / "order #42" / "order no. 42", or a message that
# is only "#42" ("item #2" is not an order).
_ORDER = re.compile(
    r"LC(\d{16})|(?:订单号?|\border\s*(?:no\.?|number)?)\s*[:：#]?\s*#?\s*(\d{1,18})\b"
    r"|^\s*#(\d{1,18})\s*$",
    re.IGNORECASE,
)


class Keywords:
    """Built-in keywords: Chinese ones match anywhere in the message (no spaces between words);
    English ones match as whole words, plural allowed ("stock" matches "in stock?", not
    "stockings"; "order" matches "orders"), as FAQ rules match words (faq.py)."""

    def __init__(self, *words: str) -> None:
        self.cjk = tuple(w for w in words if not w.isascii())
        english = "|".join(re.escape(w) for w in words if w.isascii())
        self.english = (
            re.compile(rf"(?<![a-z])(?:{english})(?:s|es)?(?![a-z])") if english else None
        )

    def said(self, lower: str) -> bool:
        """Whether ``lower`` (the message, lower-cased) says one of the keywords."""
        if any(w in lower for w in self.cjk):
            return True
        return self.english is not None and self.english.search(lower) is not None


HUMAN = Keywords("人工", "转人工", "真人", "human", "agent", "real person")
MY_ORDERS = Keywords("我的订单", "my orders", "my order")
REFUND = Keywords("退款", "退货", "refund")
STOCK = Keywords("还有货", "有货吗", "有货么", "库存", "缺货", "in stock", "stock", "sold out")
GROUP = Keywords("拼团", "成团", "团购", "group")

NOT_FOUND_ZH = "没有找到这个订单，请核对订单号。"
NOT_FOUND_EN = "No such order found; please check the number."
STATUS_ZH = {
    "pending_payment": "待付款", "paid": "已付款，待发货", "shipped": "已发货",
    "completed": "已完成", "cancelled": "已取消", "refunded": "已退款",
}  # fmt: skip
STATUS_EN = {
    "pending_payment": "awaiting payment", "paid": "paid, to be shipped", "shipped": "shipped",
    "completed": "completed", "cancelled": "cancelled", "refunded": "refunded",
}  # fmt: skip


def text_reply(content: str) -> Reply:
    return Reply("text", {"msgtype": "text", "text": {"content": content}})


def decider(pool: asyncpg.Pool, settings: Settings) -> Decide:
    """The bot's decide function for this app's settings."""
    cfg = settings.support

    async def decide(conn: asyncpg.Connection, msg: Incoming, conv: asyncpg.Record) -> Decision:
        ref = msg.session_from or msg.page_path
        goods_id = shop.goods_ref(ref)
        await shop.note(conn, msg.from_user, await shop.from_ref(conn, ref))
        if goods_id is not None:
            await conn.execute(
                "UPDATE support_conversations SET last_goods_id = $2 WHERE openid = $1",
                msg.from_user, goods_id,
            )  # fmt: skip
        if conv["state"] in ("queued", "agent"):
            return Decision("to_agent")  # the bot stays silent while humans hold it
        if conv["state"] == "closed":  # a closed conversation goes back to the bot
            await agents.move(conn, msg.from_user, "closed", "bot", "reopened")
        if msg.msg_type == "event":
            if msg.event != "user_enter_tempsession":
                return Decision("ignored")
            greeting = "您好，请问有什么可以帮您？可发送订单号查询物流，或回复“人工”转人工客服。"
            return Decision("greeted", [text_reply(greeting)])
        if msg.msg_type != "text":
            return await _miss(conn, msg, conv, cfg, zh=True)
        text = msg.content.strip()
        zh = bool(_CJK.search(text))
        lower = text.lower()
        user_id = await conn.fetchval("SELECT id FROM users WHERE openid = $1", msg.from_user)
        if HUMAN.said(lower):
            return await handoff(conn, msg.from_user, conv["state"], "asked", zh, cfg)
        if m := _ORDER.search(text):
            order_id = int(next(g for g in m.groups() if g))
            answer, order_host = await _order_status(conn, user_id, order_id, zh)
            await shop.note(conn, msg.from_user, order_host)  # only the sender's own order
            return _hit("order_status", answer)
        if MY_ORDERS.said(lower):
            return _hit("my_orders", await _my_orders(conn, user_id, zh, cfg.max_orders_listed))
        if REFUND.said(lower):
            return _hit("refund", await _refund(conn, user_id, zh))
        if STOCK.said(lower):
            goods = goods_id or await _asked_goods(conn, msg.from_user, user_id)
            return _hit("stock", await _stock(conn, goods, zh))
        if GROUP.said(lower):
            return _hit("group", await _group(conn, user_id, zh))
        host_id = await shop.guess(conn, msg.from_user, cfg.default_host_id)
        rule = faq.best(await faq.rules(conn, host_id), text)
        if rule is not None:
            replies = [text_reply(rule.answer)]
            if rule.page_path:
                replies.append(Reply("miniprogrampage", {
                    "msgtype": "miniprogrampage",
                    "miniprogrampage": {"title": rule.answer[:32], "pagepath": rule.page_path},
                }))  # fmt: skip
            await _reset_misses(conn, msg.from_user)
            return Decision(f"faq:{rule.id}", replies)
        return await _miss(conn, msg, conv, cfg, zh)

    async def _reset_misses(conn: asyncpg.Connection, openid: str) -> None:
        await conn.execute("UPDATE support_conversations SET misses = 0 WHERE openid = $1", openid)

    def _hit(outcome: str, content: str) -> Decision:
        return Decision(outcome, [text_reply(content)])

    async def wrapped(conn: asyncpg.Connection, msg: Incoming, conv: asyncpg.Record) -> Decision:
        decision = await decide(conn, msg, conv)
        if decision.outcome in ("order_status", "my_orders", "refund", "stock", "group"):
            await _reset_misses(conn, msg.from_user)
        return decision

    return wrapped


async def handoff(
    conn: asyncpg.Connection, openid: str, from_state: str, reason: str, zh: bool,
    cfg: SupportConfig,
) -> Decision:  # fmt: skip
    """Queue the buyer for a human of the conversation's shop (recorded as a transition) and
    tell them; an unscoped conversation waits for the admin (docs/support.md)."""
    host_id = await shop.resolve(conn, openid, cfg.default_host_id)
    await agents.move(conn, openid, from_state, "queued", reason)
    if host_id is not None:
        await agents.assign(conn, host_id)  # to the shop's least busy online agent with room
    text = (
        "正在为您转接人工客服，请稍候。"
        if zh
        else "Connecting you to a human agent, please wait a moment."
    )
    return Decision("handoff", [text_reply(text)])


async def _miss(
    conn: asyncpg.Connection, msg: Incoming, conv: asyncpg.Record, cfg: SupportConfig, zh: bool
) -> Decision:
    misses = await conn.fetchval(
        """UPDATE support_conversations SET misses = misses + 1 WHERE openid = $1
           RETURNING misses""",
        msg.from_user,
    )
    if misses >= cfg.handoff_after_misses:
        return await handoff(conn, msg.from_user, conv["state"], "unanswered", zh, cfg)
    text = (
        "抱歉，没有理解您的问题。可以发送订单号、“我的订单”、“退款”，或回复“人工”。"
        if zh
        else "Sorry, I didn't get that. Send an order number, 'my orders', 'refund', or 'agent'."
    )
    return Decision("miss", [text_reply(text)])


def _when(value: datetime | None) -> str:
    return value.astimezone(CST).strftime("%m-%d %H:%M") if value else "-"


async def _order_status(
    conn: asyncpg.Connection, user_id: int | None, order_id: int, zh: bool
) -> tuple[str, int | None]:
    """The answer, and the order's shop when it is the sender's (else None)."""
    row = None
    if user_id is not None and order_id < 2**63:
        row = await conn.fetchrow(
            """SELECT id, title, quantity, status, carrier, tracking_no, host_id FROM orders
               WHERE id = $1 AND user_id = $2""",
            order_id, user_id,
        )  # fmt: skip
    if row is None:  # the same words whether it does not exist or is someone else's
        return (NOT_FOUND_ZH if zh else NOT_FOUND_EN), None
    return _describe(row, zh), row["host_id"]


def _describe(row: asyncpg.Record, zh: bool) -> str:
    number = f"LC{row['id']:016d}"
    if zh:
        text = f"订单 {number}：{STATUS_ZH[row['status']]}，{row['title']} ×{row['quantity']}"
        if row["carrier"]:
            text += f"，{row['carrier']} 运单号 {row['tracking_no']}"
        return text + "。"
    text = f"Order {number}: {STATUS_EN[row['status']]}, {row['title']} x{row['quantity']}"
    if row["carrier"]:
        text += f", {row['carrier']} tracking {row['tracking_no']}"
    return text + "."


async def _my_orders(conn: asyncpg.Connection, user_id: int | None, zh: bool, n: int) -> str:
    rows: list[Any] = []
    if user_id is not None:
        rows = await conn.fetch(
            """SELECT id, title, quantity, status, carrier, tracking_no FROM orders
               WHERE user_id = $1 ORDER BY id DESC LIMIT $2""",
            user_id, n,
        )  # fmt: skip
    if not rows:
        return "您还没有订单。" if zh else "You have no orders yet."
    return "\n".join(_describe(r, zh) for r in rows)


async def _refund(conn: asyncpg.Connection, user_id: int | None, zh: bool) -> str:
    row = None
    if user_id is not None:
        row = await conn.fetchrow(
            """SELECT id, status, refunded_at FROM orders WHERE user_id = $1
                 AND status IN ('paid', 'shipped', 'completed', 'refunded')
               ORDER BY id DESC LIMIT 1""",
            user_id,
        )
    if row is None:
        return "您没有可退款的订单。" if zh else "You have no order that can be refunded."
    number = f"LC{row['id']:016d}"
    if row["status"] == "refunded":
        return (
            f"订单 {number} 已于 {_when(row['refunded_at'])} 退款。"
            if zh
            else f"Order {number} was refunded on {_when(row['refunded_at'])}."
        )
    return (
        f"订单 {number} 可申请退款：在“我的订单”中打开该订单点击“申请退款”，或回复“人工”。"
        if zh
        else f"Order {number} can be refunded: open it in 'My orders' and tap 'Refund', "
        "or reply 'agent'."
    )


async def _asked_goods(conn: asyncpg.Connection, openid: str, user_id: int | None) -> int | None:
    """The goods a stock question without its own reference is about: the latest of the goods
    the buyer came from or sent as a card (``last_goods_id``) and the goods they most recently
    tapped in a live room (analytics events, :func:`shop.tapped`)."""
    noted: int | None = await conn.fetchval(
        "SELECT last_goods_id FROM support_conversations WHERE openid = $1", openid
    )
    tap = await shop.tapped(conn, user_id) if user_id is not None else None
    if tap is None:
        return noted
    if noted is not None:
        # When the buyer named `noted`: the latest message of theirs whose reference names it.
        rows = await conn.fetch(
            """SELECT received_at, payload->>'session_from' AS s, payload->>'page_path' AS p
               FROM support_inbox WHERE openid = $1
                 AND (payload->>'session_from' <> '' OR payload->>'page_path' <> '')
               ORDER BY id DESC LIMIT 50""",
            openid,
        )
        for r in rows:
            if shop.goods_ref(r["s"] or r["p"]) == noted:
                if r["received_at"] > tap["at"]:
                    return noted
                break
    goods: int = tap["goods_id"]
    return goods


async def _stock(conn: asyncpg.Connection, goods_id: int | None, zh: bool) -> str:
    row = None
    if goods_id is not None:
        row = await conn.fetchrow("SELECT title, stock, status FROM goods WHERE id = $1", goods_id)
    if row is None:
        return (
            "请先在直播间点开您想问的商品，或发送商品卡片。"
            if zh
            else "Tap the goods in the live room (or send its card) and ask again."
        )
    if row["status"] != "on_sale" or row["stock"] <= 0:
        return f"{row['title']} 暂时缺货。" if zh else f"{row['title']} is out of stock."
    return (
        f"{row['title']} 还有货，库存 {row['stock']} 件。"
        if zh
        else f"{row['title']} is in stock: {row['stock']} left."
    )


async def _group(conn: asyncpg.Connection, user_id: int | None, zh: bool) -> str:
    row = None
    if user_id is not None:
        row = await conn.fetchrow(
            """SELECT g.size, g.paid, g.status, g.expires_at FROM group_members m
               JOIN groups g ON g.id = m.group_id
               WHERE m.user_id = $1 AND g.status IN ('open', 'pending')
               ORDER BY g.id DESC LIMIT 1""",
            user_id,
        )
    if row is None:
        return "您目前没有进行中的拼团。" if zh else "You have no open group."
    left = row["size"] - row["paid"]
    return (
        f"已有 {row['paid']} 人参团，还差 {left} 人，{_when(row['expires_at'])} 截止。"
        if zh
        else f"{row['paid']} joined, {left} to go, ends at {_when(row['expires_at'])} (UTC+8)."
    )
