"""The fake WeChat's app: :class:`FakeWechat` (its state and every handler) wires the routes of
login, messages, pay, refunds and customer service into one aiohttp app; :func:`start_fake`
serves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from livecommerce.devtools.fake_wechat import customer_service
from livecommerce.devtools.fake_wechat.login import LoginApi, openid_for
from livecommerce.devtools.fake_wechat.messages import MessagesApi
from livecommerce.devtools.fake_wechat.pay import PayApi
from livecommerce.devtools.fake_wechat.refunds import RefundsApi


@dataclass
class FakeWechat(LoginApi, MessagesApi, PayApi, RefundsApi):
    """One fake WeChat: its state (:class:`~livecommerce.devtools.fake_wechat.state.WechatState`)
    and the handlers of login, messages, pay and refunds, served by :meth:`make_app`."""

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_get("/sns/jscode2session", self.jscode2session)
        app.router.add_get("/cgi-bin/token", self.token)
        app.router.add_post("/cgi-bin/message/subscribe/send", self.subscribe_send)
        app.router.add_post("/wxa/msg_sec_check", self.msg_sec_check)
        app.router.add_post("/v3/pay/transactions/jsapi", self.jsapi_prepay)
        app.router.add_get("/v3/pay/transactions/out-trade-no/{out_trade_no}", self.query_order)
        app.router.add_post(
            "/v3/pay/transactions/out-trade-no/{out_trade_no}/close", self.close_order
        )
        app.router.add_post("/v3/refund/domestic/refunds", self.create_refund)
        app.router.add_get("/v3/refund/domestic/refunds/{out_refund_no}", self.query_refund)
        app.router.add_post("/dev/pay", self.dev_pay)
        app.router.add_post("/dev/refunds/settle", self.dev_settle_refunds)
        app.router.add_get("/dev/messages", self.dev_messages)
        app.router.add_post("/dev/sec-check", self.dev_sec_check)
        app.cleanup_ctx.append(self._client_ctx)
        self._add_customer_service(app)
        return app

    def _add_customer_service(self, app: web.Application) -> None:
        """The customer-service routes (send, typing, /dev/support/*): customer_service."""
        if self.cs is None:
            self.cs = customer_service.FakeCustomerService(self.app_id)
        customer_service.add_routes(
            app, self.cs, self.access_tokens,
            lambda user: openid_for(self.app_id, user), lambda: self.session,
        )  # fmt: skip

    async def _client_ctx(self, app: web.Application) -> Any:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        yield
        await self.session.close()


async def start_fake(
    fake: FakeWechat, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, str]:
    """Serve ``fake`` on ``host:port`` (0 = any free port); returns the runner and base URL."""
    runner = web.AppRunner(fake.make_app(), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    return runner, f"http://{bound_host}:{bound_port}"
