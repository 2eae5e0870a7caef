"""The commerce route table and its resources (WeChat client, fake WeChat, pay keys, reaper).

``setup(app)`` is called once from ``create_app``. In development with no ``wechat.base_url``
it starts the fake WeChat server in-process on its own port and points the client at it, with
dev WeChat Pay keys generated at startup and shared with the fake's pay simulator.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from livecommerce import keys
from livecommerce.aio import running
from livecommerce.api.contract import HOST, USER, RawResponse, add_routes, raw_route, route
from livecommerce.commerce import (
    auth_api,
    goods_api,
    orders_api,
    pay_api,
    refunds_api,
    wechatpay,
)
from livecommerce.commerce.payclient import WechatPayClient
from livecommerce.commerce.paysign import Merchant
from livecommerce.commerce.reaper import OrderReaper
from livecommerce.commerce.refund_worker import RefundWorker
from livecommerce.commerce.wechat_client import WechatClient
from livecommerce.devtools.fake_wechat import FakeWechat, start_fake
from livecommerce.notify.sender import NotificationSender

log = logging.getLogger("livecommerce.commerce")
DEV_APP_ID = "wxdev0000000000000"
DEV_ORDER_TEMPLATE = "dev-order-template"


@functools.cache
def dev_platform() -> wechatpay.DevPlatform:
    """One dev pay platform per process (made on first use: RSA key generation is slow)."""
    return wechatpay.DevPlatform.generate()


async def wechat_ctx(app: web.Application) -> AsyncIterator[None]:
    """The WeChat client and pay keys; the in-process fake WeChat when none is configured."""
    settings = app[keys.SETTINGS]
    cfg = settings.wechat
    runner: web.AppRunner | None = None
    if cfg.base_url:
        base_url, app_id, app_secret = cfg.base_url, cfg.app_id, cfg.app_secret
    else:
        # Development only (config validation requires base_url in production).
        app_id, app_secret = cfg.app_id or DEV_APP_ID, cfg.app_secret or secrets.token_hex(16)
        fake = FakeWechat(app_id=app_id, app_secret=app_secret, platform=dev_platform())
        runner, base_url = await start_fake(fake, "127.0.0.1", cfg.fake_port)
        app[keys.FAKE_WECHAT] = fake
        app[keys.FAKE_WECHAT_URL] = base_url
        log.info("fake WeChat server (development) on %s", base_url)
    pay = settings.wechatpay
    if pay.mch_id:
        app[keys.PAY_KEYS] = wechatpay.load_pay_keys(settings)
        merchant = Merchant(
            pay.mch_id, app_id, pay.merchant_serial, wechatpay.load_merchant_key(pay)
        )
        pay_url = pay.api_url
    else:
        platform = dev_platform()
        app[keys.PAY_KEYS] = platform.pay_keys(app_id, pay.notify_max_age_seconds)
        assert platform.merchant_key is not None
        merchant = Merchant(
            platform.mch_id, app_id, platform.merchant_serial, platform.merchant_key
        )
        pay_url = base_url
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=cfg.timeout_seconds))
    pay_session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=pay.timeout_seconds))
    app[keys.PAY_CLIENT] = WechatPayClient(pay_session, pay_url, merchant, app[keys.PAY_KEYS])
    app[keys.WECHAT_CLIENT] = WechatClient(
        session=session,
        base_url=base_url,
        app_id=app_id,
        app_secret=app_secret,
        max_attempts=cfg.max_attempts,
        backoff_seconds=cfg.retry_backoff_seconds,
    )
    try:
        yield
    finally:
        await session.close()
        await pay_session.close()
        if runner is not None:
            await runner.cleanup()


async def notifications_ctx(app: web.Application) -> AsyncIterator[None]:
    """The outbox sender: order events to the buyer's sockets and as subscribe messages."""
    settings = app[keys.SETTINGS]
    template = settings.wechat.order_template_id
    if not template and not settings.wechat.base_url:
        template = DEV_ORDER_TEMPLATE  # the fake WeChat accepts it, so the demo shows messages
    templates = {
        "order_paid": template,
        "order_shipped": template,
        "refund_started": template,
        "refund_succeeded": template,
        "refund_closed": template,
        "aftersale_approved": template,
        "aftersale_rejected": template,
        "group_succeeded": settings.groups.success_template_id,
        "group_failed": settings.groups.failed_template_id,
    }
    sender = NotificationSender(
        app[keys.PG_POOL], app[keys.REDIS], app[keys.WECHAT_CLIENT], templates
    )
    app[keys.NOTIFICATION_SENDER] = sender
    async with running(sender.run(), "notification-sender"):
        yield


async def reaper_ctx(app: web.Application) -> AsyncIterator[None]:
    """The auto-cancel task of unpaid orders: started with the app, cancelled and awaited."""
    settings = app[keys.SETTINGS]
    reaper = OrderReaper(
        app[keys.PG_POOL], settings.orders, app[keys.PAY_CLIENT], settings.wechatpay
    )
    app[keys.ORDER_REAPER] = reaper
    async with running(reaper.run(), "order-reaper"):
        yield


async def refunds_ctx(app: web.Application) -> AsyncIterator[None]:
    """The refund worker (asks WeChat Pay for the refunds owed and follows them up) and its
    LISTEN on ``lc_refunds``, so a refund committed on any node is sent at once."""
    settings = app[keys.SETTINGS]
    worker = RefundWorker(app[keys.PG_POOL], app[keys.PAY_CLIENT], settings.wechatpay)
    app[keys.REFUND_WORKER] = worker
    listener = worker.listener(settings.database.url)
    app[keys.REFUND_LISTENER] = listener
    async with (
        running(listener.run(), "refund-listener"),
        running(worker.run(), "refund-worker"),
    ):
        yield


def setup(app: web.Application) -> None:
    """Add the commerce routes and cleanup contexts (after the PostgreSQL one)."""
    app.cleanup_ctx.append(wechat_ctx)
    app.cleanup_ctx.append(reaper_ctx)
    app.cleanup_ctx.append(refunds_ctx)
    app.cleanup_ctx.append(notifications_ctx)
    add_routes(app, ROUTES)


ROUTES = (
    route("POST", "/api/auth/wechat/login", auth_api.login, errors=(403, 429, 502),
          rules=(
              "WeChat refuses the login code (`invalid_code`, `code_used`)",
          )),
    route("GET", "/api/me", auth_api.me, auth=USER, errors=(404,)),
    route("PATCH", "/api/me", auth_api.update_me, auth=USER, errors=(404, 502),
          rules=(
              "WeChat's content check refuses the nickname (`content_risky`)",
          )),
    route("GET", "/api/goods", goods_api.feed,
          rules=(
              "the cursor was not issued by this server for the same filters",
          )),
    route("POST", "/api/goods", goods_api.create, auth=HOST, status=201,
          rules=(
              "a room in `room_ids` is not the host's",
          )),
    route("GET", "/api/goods/{id}", goods_api.read),
    route("PATCH", "/api/goods/{id}", goods_api.update, auth=HOST,
          rules=(
              "a room in `room_ids` is not the host's",
          )),
    route("POST", "/api/orders", orders_api.create, auth=USER, status=201, also=(200,),
          errors=(404, 409), idempotency_key=True,
          rules=(
              "`quantity` is above `orders.max_quantity` (config)",
              "the total (quantity x price) exceeds 2147483647 fen, WeChat Pay's int32 limit "
              "(`amount_too_large`)",
          )),
    route("GET", "/api/orders", orders_api.list_mine, auth=USER,
          rules=(
              "the cursor was not issued by this server for the same filters",
          )),
    route("GET", "/api/orders/{id}", orders_api.read, auth=USER),
    route("PUT", "/api/orders/{id}/address", orders_api.set_address, auth=USER, errors=(409,)),
    route("GET", "/api/host/orders", orders_api.host_list, auth=HOST,
          rules=(
              "the cursor was not issued by this server for the same filters",
          )),
    raw_route("GET", "/api/host/orders.csv", orders_api.host_csv, auth=HOST,
              query=orders_api.HostOrderQuery,
              rules=(
                  "the cursor was not issued by this server for the same filters",
              ),
              responses=(
                  RawResponse(200, "The orders as CSV (UTF-8 with BOM), addresses included",
                              "text/csv"),
              )),
    route("POST", "/api/orders/{id}/pay", pay_api.pay, auth=USER, errors=(409, 502)),
    route("POST", "/api/orders/{id}/cancel", orders_api.cancel, auth=USER, errors=(409,)),
    route("POST", "/api/orders/{id}/confirm", orders_api.confirm, auth=USER, errors=(409,)),
    route("POST", "/api/host/orders/{id}/ship", orders_api.ship, auth=HOST, errors=(409,)),
    route("GET", "/api/orders/{id}/refunds", refunds_api.buyer_refunds, auth=USER,
          tag="refunds"),
    route("POST", "/api/orders/{id}/after-sales", refunds_api.request_after_sale, auth=USER,
          status=201, also=(200,), errors=(409,), tag="refunds"),
    route("GET", "/api/orders/{id}/after-sales", refunds_api.buyer_after_sales, auth=USER,
          tag="refunds"),
    route("GET", "/api/host/after-sales", refunds_api.host_after_sales, auth=HOST,
          tag="refunds",
          rules=(
              "the cursor was not issued by this server for the same filters",
          )),
    route("POST", "/api/host/after-sales/{id}/approve", refunds_api.approve, auth=HOST,
          errors=(409,), tag="refunds"),
    route("POST", "/api/host/after-sales/{id}/reject", refunds_api.reject, auth=HOST,
          errors=(409,), tag="refunds"),
    route("GET", "/api/host/orders/{id}/refunds", refunds_api.host_refunds, auth=HOST,
          tag="refunds"),
    route("POST", "/api/host/orders/{id}/refunds", refunds_api.goodwill, auth=HOST, status=201,
          also=(200,), errors=(409,), idempotency_key=True, tag="refunds"),
    route("POST", "/api/pay/wechat/refund-notify", refunds_api.refund_notify,
          errors=(401,), guard=pay_api.verify_signature, tag="refunds",
          rules=(
              "the resource does not decrypt, or names another merchant, refund or amount",
          )),
    route("POST", "/api/pay/wechat/notify", pay_api.wechat_notify, errors=(401, 404, 409),
          guard=pay_api.verify_signature,
          rules=(
              "the resource does not decrypt, or names another merchant, app, order or amount",
          )),
)  # fmt: skip
