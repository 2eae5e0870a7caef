"""A fake WeChat server for development and tests: login, messages and a pay simulator.

It answers like the real API (HTTP 200 with ``errcode``/``errmsg`` on errors) so the real client
code runs against it over real HTTP. The embedded default starts it in-process on its own port
(see ``commerce.routes``); production points ``wechat.base_url`` at the real API instead.

Modules, one thing each:

    app               FakeWechat (state and handlers) and its routes; start_fake serves it
    state             WechatState, every field the handlers share; the Prepay and Refund records
    login             jscode2session and its code conventions; openid_for, unionid_for
    messages          access tokens, subscribe messages, the content-security check
    pay_wire          WeChat Pay v3 signed requests, signed answers and notifications
    pay               JSAPI prepay, order query and close, /dev/pay (the buyer pays)
    refunds           refund create and query, /dev/refunds/settle
    customer_service  the customer-service send and typing APIs, /dev/support/*
    answers           errcode/errmsg answers and the dev endpoints' JSON

Each module's docstring documents its endpoints and control conventions (the login codes, the
dev endpoints). Every public name is importable from here, so ``fake_wechat.<name>`` keeps
working.
"""

from __future__ import annotations

from livecommerce.devtools.fake_wechat.app import FakeWechat, start_fake
from livecommerce.devtools.fake_wechat.login import openid_for, unionid_for
from livecommerce.devtools.fake_wechat.messages import REVIEW_WORDS, RISKY_WORDS
from livecommerce.devtools.fake_wechat.pay import INT32_MAX
from livecommerce.devtools.fake_wechat.state import Prepay, Refund

__all__ = [
    "INT32_MAX",
    "REVIEW_WORDS",
    "RISKY_WORDS",
    "FakeWechat",
    "Prepay",
    "Refund",
    "openid_for",
    "start_fake",
    "unionid_for",
]
