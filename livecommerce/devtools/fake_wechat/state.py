"""The fake WeChat's state: the pay records (:class:`Prepay`, :class:`Refund`) and
:class:`WechatState`, every field the handlers of login, messages, pay and refunds share.

The handler classes (``login.LoginApi``, ``messages.MessagesApi``, ``pay.PayApi``,
``refunds.RefundsApi``) derive from :class:`WechatState`; ``app.FakeWechat`` combines them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp

from livecommerce.commerce.wechatpay import DevPlatform
from livecommerce.devtools.fake_wechat import customer_service


@dataclass
class Prepay:
    """One WeChat Pay order as the fake sees it (keyed by ``out_trade_no``)."""

    out_trade_no: str
    total: int
    notify_url: str
    openid: str
    app_id: str
    prepay_id: str
    state: str = "NOTPAY"  # NOTPAY -> SUCCESS | CLOSED
    transaction_id: str = ""
    success_time: str = ""


@dataclass
class Refund:
    """One refund as the fake sees it (keyed by ``out_refund_no``)."""

    out_refund_no: str
    refund_id: str
    transaction_id: str
    out_trade_no: str
    refund: int
    total: int
    notify_url: str
    status: str = "PROCESSING"


@dataclass
class WechatState:
    """State of one fake WeChat: its credentials, codes seen, prepays and messages."""

    app_id: str
    app_secret: str
    platform: DevPlatform
    used_codes: set[str] = field(default_factory=set)
    busy_calls: dict[str, int] = field(default_factory=dict)
    access_tokens: set[str] = field(default_factory=set)
    prepays: dict[str, Prepay] = field(default_factory=dict)
    orders: dict[str, Prepay] = field(default_factory=dict)
    closed: list[str] = field(default_factory=list)
    prepay_calls: int = 0
    refunds: dict[str, Refund] = field(default_factory=dict)
    transactions: dict[str, Prepay] = field(default_factory=dict)
    refund_calls: int = 0
    # How the fake settles a refund: its final status, whether it notifies (False: only a
    # query finds out), and how many refund calls answer SYSTEM_ERROR first (outage).
    refund_final: str = "SUCCESS"
    refund_notify: bool = True
    refund_failures: int = 0
    refund_notices: list[dict[str, Any]] = field(default_factory=list)
    rejected_signatures: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    login_calls: int = 0
    checked_texts: list[str] = field(default_factory=list)
    checked_scenes: list[int] = field(default_factory=list)
    # The content check's dev switches (POST /dev/sec-check): an outage, a delay per answer.
    sec_check_down: bool = False
    sec_check_delay: float = 0.0
    session: aiohttp.ClientSession | None = None
    # Customer service (customer_service): its state; token and crypt set by support.routes.
    cs: customer_service.FakeCustomerService | None = None
