"""Automatic replies over real HTTP: the fake WeChat pushes, the bot answers via the send API."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from livecommerce.support.replies import NOT_FOUND_EN, NOT_FOUND_ZH
from tests.commerce.conftest import bearer
from tests.support import http
from tests.support_cs.conftest import Desk


async def ask(desk: Desk, user: str, content: str, **spec: Any) -> str:
    """Push one text from ``user`` and return the text of the last reply sent to them."""
    before = len(await desk.sent(desk.openid(user)))
    await desk.push(user=user, type="text", content=content, **spec)
    await desk.settled()
    sent = await desk.sent(desk.openid(user))
    assert len(sent) == before + 1, sent
    return str(sent[-1]["text"]["content"])


async def buyer_with_order(desk: Desk, user: str, **order: Any) -> tuple[str, int]:
    """A logged-in buyer (the real login flow) with one order; (token, order id)."""
    host_id, _ = await desk.shop.host()
    goods_id = await desk.shop.goods(host_id, title=order.pop("title", "Green tea"))
    token = await desk.shop.login(user)
    status, body = await desk.shop.order(token, goods_id, quantity=2)
    assert status == 201, body
    if order:
        sets = ", ".join(f"{k} = ${i + 2}" for i, k in enumerate(order))
        await desk.pool.execute(
            f"UPDATE orders SET {sets} WHERE id = $1", body["id"], *order.values()
        )
    return token, body["id"]


async def test_own_order_number_gets_status_carrier_and_tracking(desk: Desk) -> None:
    """An order number of the sender's own order: status, items, carrier and tracking number."""
    _, order_id = await buyer_with_order(
        desk, "alice", status="shipped", carrier="SF Express", tracking_no="SF123456"
    )
    reply = await ask(desk, "alice", f"我的订单 LC{order_id:016d} 到哪了")
    assert reply == f"订单 LC{order_id:016d}：已发货，Green tea ×2，SF Express 运单号 SF123456。"
    reply = await ask(desk, "alice", f"where is order #{order_id}?")
    assert "shipped" in reply
    assert "SF123456" in reply


async def test_other_buyers_order_looks_exactly_like_a_missing_one(desk: Desk) -> None:
    """Asking about someone else's order answers the same 'not found' as a nonexistent one."""
    _, order_id = await buyer_with_order(desk, "alice", carrier="SF", tracking_no="SECRET1")
    await desk.shop.login("mallory")
    theirs = await ask(desk, "mallory", f"订单号 {order_id}")
    missing = await ask(desk, "mallory", "订单号 99999999")
    assert theirs == missing == NOT_FOUND_ZH
    assert await ask(desk, "mallory", f"order #{order_id}") == NOT_FOUND_EN
    assert await ask(desk, "stranger", f"order #{order_id}") == NOT_FOUND_EN  # never logged in


async def test_my_orders_and_refund(desk: Desk) -> None:
    """'我的订单' lists the latest orders; 'refund' explains the latest refundable one."""
    _, order_id = await buyer_with_order(desk, "bob", status="paid")
    listing = await ask(desk, "bob", "我的订单")
    assert f"LC{order_id:016d}" in listing
    assert "已付款" in listing
    refund = await ask(desk, "bob", "how do I get a refund")
    assert f"Order LC{order_id:016d} can be refunded" in refund
    assert await ask(desk, "nobody", "my orders") == "You have no orders yet."


async def test_stock_question_uses_the_goods_the_buyer_came_from(desk: Desk) -> None:
    """After entering from a goods page (SessionFrom goods:N), '还有货吗' answers its stock."""
    host_id, _ = await desk.shop.host()
    goods_id = await desk.shop.goods(host_id, stock=7, title="Oolong")
    await desk.push(user="carol", type="event", session_from=f"goods:{goods_id}")
    await desk.settled()
    assert await ask(desk, "carol", "还有货吗？") == "Oolong 还有货，库存 7 件。"
    other = await desk.shop.goods(host_id, stock=0, title="Puer")
    await desk.push(user="carol", type="miniprogrampage", title="Puer",
                    page_path=f"pages/goods/goods?id={other}")  # fmt: skip
    await desk.settled()
    assert await ask(desk, "carol", "is it in stock?") == "Puer is out of stock."


async def _tap(desk: Desk, token: str, room_id: int, goods_id: int) -> None:
    """The buyer taps a goods bubble in a live room (the audience page's analytics event)."""
    status, body = await http("POST", desk.shop.url + "/api/events", headers=bearer(token), json={
        "events": [{"id": str(uuid.uuid4()), "type": "bubble_click", "room_id": room_id,
                    "goods_id": goods_id, "push_seq": 1}],
    })  # fmt: skip
    assert status == 200, body
    assert isinstance(body, dict)
    assert body["stored"] == 1, body


async def test_stock_question_uses_the_goods_tapped_in_a_live_room(desk: Desk) -> None:
    """Issue 18: "in stock?" answers for the goods the buyer most recently tapped in a live
    room, when they enter customer service from the room (no goods in SessionFrom); a card sent
    later wins, and a tap after that wins again."""
    host_id, _ = await desk.shop.host()
    scarf = await desk.shop.goods(host_id, stock=9, title="Scarf")
    gloves = await desk.shop.goods(host_id, stock=4, title="Gloves")
    hat = await desk.shop.goods(host_id, stock=0, title="Hat")
    token = await desk.shop.login("tess")
    await _tap(desk, token, 7, scarf)
    await desk.push(user="tess", type="event", session_from="room:7")
    await desk.settled()
    assert await ask(desk, "tess", "还有货吗") == "Scarf 还有货，库存 9 件。"
    await desk.push(user="tess", type="miniprogrampage", title="Gloves",
                    page_path=f"pages/goods/goods?id={gloves}")  # fmt: skip
    await desk.settled()
    assert await ask(desk, "tess", "in stock?") == "Gloves is in stock: 4 left."
    await _tap(desk, token, 7, hat)
    assert await ask(desk, "tess", "in stock?") == "Hat is out of stock."


async def test_group_progress(desk: Desk) -> None:
    """A buyer in an open group hears 'N joined, M to go, ends at ...'."""
    _token, order_id = await buyer_with_order(desk, "dora")
    user_id = await desk.pool.fetchval("SELECT user_id FROM orders WHERE id = $1", order_id)
    goods_id = await desk.pool.fetchval("SELECT goods_id FROM orders WHERE id = $1", order_id)
    host_id = await desk.pool.fetchval("SELECT host_id FROM goods WHERE id = $1", goods_id)
    offer = await desk.pool.fetchval(
        """INSERT INTO group_offers (host_id, goods_id, group_price_fen, size, fill_seconds)
           VALUES ($1, $2, 100, 5, 3600) RETURNING id""",
        host_id,
        goods_id,
    )
    group = await desk.pool.fetchval(
        """INSERT INTO groups (offer_id, leader_id, size, status, seats, paid, expires_at)
           VALUES ($1, $2, 5, 'open', 2, 2, '2030-01-01T12:00:00+08:00') RETURNING id""",
        offer,
        user_id,
    )
    await desk.pool.execute(
        "INSERT INTO group_members (group_id, user_id, order_id, status) VALUES ($1, $2, $3, 'paid')",
        group,
        user_id,
        order_id,
    )
    assert (
        await ask(desk, "dora", "拼团还差几个人") == "已有 2 人参团，还差 3 人，01-01 12:00 截止。"
    )


async def test_faq_rules_from_rest_match_words_not_substrings(desk: Desk) -> None:
    """Host-made FAQ rules answer Chinese and English; 'ship' does not match 'relationship'."""
    _, host = await desk.shop.host()
    rule = {
        "keywords": ["运费", "shipping fee"],
        "answer": "全场包邮 / Free shipping",
        "priority": 5,
    }
    status, created = await http("POST", desk.shop.url + "/api/host/support/faq", json=rule,
                                 headers=bearer(host))  # fmt: skip
    assert status == 201, created
    status, _ = await http("POST", desk.shop.url + "/api/host/support/faq",
                           json={"keywords": ["ship"], "answer": "We ship daily"},
                           headers=bearer(host))  # fmt: skip
    assert status == 201
    assert await ask(desk, "erin", "请问运费多少钱") == "全场包邮 / Free shipping"
    assert await ask(desk, "erin", "What's the shipping fee?") == "全场包邮 / Free shipping"
    assert await ask(desk, "erin", "when do you ship?") == "We ship daily"
    assert (await ask(desk, "fred", "our relationship")).startswith("Sorry")
    status, listed = await http(
        "GET", desk.shop.url + "/api/host/support/faq", headers=bearer(host)
    )
    assert status == 200
    assert len(listed["items"]) == 2
    _, other = await desk.shop.host()
    url = desk.shop.url + f"/api/host/support/faq/{created['id']}"  # type: ignore[index]
    assert (await http("DELETE", url, headers=bearer(other)))[0] == 404
    assert (await http("DELETE", url, headers=bearer(host)))[0] == 200


@pytest.mark.parametrize(
    "keywords", [["，"], ["!!"], ["。。。"], ["  "], ["退货", "？"], ["🙂"], ["-_-"]]
)
async def test_faq_keywords_need_a_letter_or_a_digit(desk: Desk, keywords: list[str]) -> None:
    """A keyword of punctuation, symbols or blanks alone (it would match almost every message)
    is a 400 on ``keywords``; nothing is stored."""
    _, host = await desk.shop.host()
    status, body = await http("POST", desk.shop.url + "/api/host/support/faq",
                              json={"keywords": keywords, "answer": "Hi"},
                              headers=bearer(host))  # fmt: skip
    assert (status, body["error"]["field"]) == (400, "keywords"), body  # type: ignore[index]
    assert await desk.pool.fetchval("SELECT count(*) FROM support_faq") == 0


async def test_faq_keywords_in_any_script_are_accepted(desk: Desk) -> None:
    """Chinese, English, digits, kana, hangul and fullwidth letters each make a keyword (with
    punctuation around them too); the OpenAPI document carries the rule."""
    _, host = await desk.shop.host()
    keywords = ["7天", "退货?", "Größe", "サイズ", "배송", "ＶＩＰ", "$100"]
    status, body = await http("POST", desk.shop.url + "/api/host/support/faq",
                              json={"keywords": keywords, "answer": "Hi"},
                              headers=bearer(host))  # fmt: skip
    assert status == 201, body
    _, doc = await http("GET", desk.shop.url + "/api/openapi.json")
    keyword = doc["components"]["schemas"]["FaqCreate"]["properties"]["keywords"]["items"]  # type: ignore[index]
    assert "\\u4E00-\\u9FFF" in keyword["pattern"]


async def test_faq_rules_answer_only_their_own_shops_buyers(desk: Desk) -> None:
    """One host's FAQ rule never answers another shop's buyer, whatever its priority (it did:
    every shop's rules answered everyone, so a host could take all buyers' questions and send
    them a card to their own page); a buyer of no known shop gets no shop's rule when several
    shops have rules; a rule without a shop answers everyone."""
    (a_id, a), (b_id, b) = await desk.shop.host(), await desk.shop.host()
    a_goods, b_goods = await desk.shop.goods(a_id), await desk.shop.goods(b_id)
    for token, answer, priority in ((a, "A: free shipping", 0), (b, "B: pay me", 1000)):
        status, _ = await http("POST", desk.shop.url + "/api/host/support/faq", json={
            "keywords": ["运费"], "answer": answer, "priority": priority,
        }, headers=bearer(token))  # fmt: skip
        assert status == 201
    for user, goods in (("ann", a_goods), ("ben", b_goods)):
        await desk.push(user=user, type="event", session_from=f"goods:{goods}")
    await desk.settled()
    assert await ask(desk, "ann", "请问运费多少钱") == "A: free shipping"
    assert await ask(desk, "ben", "请问运费多少钱") == "B: pay me"
    assert (await ask(desk, "cat", "请问运费多少钱")).startswith("抱歉")  # no shop known
    await desk.pool.execute(
        "INSERT INTO support_faq (keywords, answer) VALUES ('{退换}', 'Everyone: 7 days')"
    )
    assert await ask(desk, "ann", "可以退换吗") == "Everyone: 7 days"
    assert await ask(desk, "dan", "可以退换吗") == "Everyone: 7 days"


async def test_two_misses_or_asking_hand_off_and_the_bot_goes_silent(desk: Desk) -> None:
    """Nothing matched twice in a row -> hand-off (recorded); then the bot says nothing."""
    assert (await ask(desk, "gus", "asdf")).startswith("Sorry")
    assert (
        await ask(desk, "gus", "qwerty") == "Connecting you to a human agent, please wait a moment."
    )
    conv = await desk.pool.fetchrow(
        "SELECT * FROM support_conversations WHERE openid = $1", desk.openid("gus")
    )
    assert conv["state"] == "queued"
    moves = await desk.pool.fetch("SELECT from_state, to_state, reason FROM support_transitions")
    assert [tuple(m) for m in moves] == [("bot", "queued", "unanswered")]
    await desk.push(user="gus", type="text", content="my orders")
    await desk.settled()
    assert len(await desk.sent(desk.openid("gus"))) == 2
    assert await ask(desk, "hal", "转人工") == "正在为您转接人工客服，请稍候。"


@pytest.mark.parametrize("fmt", ["xml", "json"])
async def test_enter_session_greets(desk: Desk, fmt: str) -> None:
    """user_enter_tempsession gets one greeting through the send API."""
    await desk.push(user="ivy", type="event", session_from="room:1", format=fmt, mode="safe")
    await desk.settled()
    sent = await desk.sent(desk.openid("ivy"))
    assert len(sent) == 1
    assert sent[0]["text"]["content"].startswith("您好")


async def test_built_in_keywords_match_words_not_parts_of_words(desk: Desk) -> None:
    """English built-in keywords are whole words (plurals allowed): "stockings" is not a stock
    question and "item #2" is not an order number; "in stock?", "my orders", "#42" alone and
    "order #42" still are."""
    missed = await ask(desk, "wendy", "Do you sell stockings?")
    assert missed.startswith("Sorry"), missed
    assert (await ask(desk, "xena", "what about item #2")).startswith("Sorry")
    assert await ask(desk, "yuri", "#424242") == NOT_FOUND_EN
    assert await ask(desk, "yuri", "order #424242") == NOT_FOUND_EN
    # A stock question with no goods known yet: the stock branch asks which goods.
    assert (await ask(desk, "zane", "Is it in stock?")).startswith("Tap the goods")
