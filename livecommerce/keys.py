"""Every piece of shared app state, each under a typed ``web.AppKey``."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from redis.asyncio import Redis

from livecommerce.commerce.payclient import WechatPayClient
from livecommerce.commerce.reaper import OrderReaper
from livecommerce.commerce.refund_worker import RefundWorker
from livecommerce.commerce.wechat_client import WechatClient
from livecommerce.commerce.wechatpay import PayKeys
from livecommerce.config import Settings
from livecommerce.devtools.fake_wechat import FakeWechat
from livecommerce.growth.analytics.live import LiveCounters
from livecommerce.growth.analytics.writer import Writer as AnalyticsWriter
from livecommerce.metrics import Metrics
from livecommerce.notify.sender import NotificationSender
from livecommerce.outage import OutageLog
from livecommerce.pglisten import Listener
from livecommerce.realtime.broker import Broker
from livecommerce.realtime.conn import Sockets
from livecommerce.realtime.endpoint import Endpoint
from livecommerce.realtime.hub import Hub
from livecommerce.realtime.node import Node
from livecommerce.social.flashsale import FlashStock
from livecommerce.social.worker import SocialWorker
from livecommerce.support.context import SupportContext
from livecommerce.timer.dispatcher import Dispatcher
from livecommerce.timer.wheel import Wheel

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
PG_POOL = web.AppKey("pg_pool", asyncpg.Pool)
REDIS = web.AppKey("redis", Redis)
# Which backend is down right now (503s, one log line per outage): errors.py and the lean path.
OUTAGES = web.AppKey("outages", OutageLog)


# Every open viewer WebSocket on this node (from the 101 until the transport is gone); each is
# closed with protocol.CLOSE_RECONNECT on shutdown.
WEBSOCKETS = web.AppKey("websockets", Sockets)

# Realtime (live rooms): the publisher, this node's rooms, its background tasks, and the viewer
# endpoint the listening site hands WebSocket upgrades to.
BROKER = web.AppKey("broker", Broker)
HUB = web.AppKey("hub", Hub)
NODE = web.AppKey("node", Node)
VIEWER_ENDPOINT = web.AppKey("viewer_endpoint", Endpoint)

# Commerce (login, goods, orders, payments): created by commerce.routes' cleanup contexts.
WECHAT_CLIENT = web.AppKey("wechat_client", WechatClient)
PAY_KEYS = web.AppKey("pay_keys", PayKeys)
PAY_CLIENT = web.AppKey("pay_client", WechatPayClient)
ORDER_REAPER = web.AppKey("order_reaper", OrderReaper)
REFUND_WORKER = web.AppKey("refund_worker", RefundWorker)
REFUND_LISTENER = web.AppKey("refund_listener", Listener)
# Development only: the in-process fake WeChat server and its base URL.
FAKE_WECHAT = web.AppKey("fake_wechat", FakeWechat)
FAKE_WECHAT_URL = web.AppKey("fake_wechat_url", str)

# Timer wheel (scheduled pushes): the Redis wheel and this node's dispatcher.
WHEEL = web.AppKey("wheel", Wheel)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)

# Notifications: the outbox sender of this node.
NOTIFICATION_SENDER = web.AppKey("notification_sender", NotificationSender)

# Social commerce (flash sales, points, group buying): the flash-sale stock gate and this
# node's social worker.
FLASH_STOCK = web.AppKey("flash_stock", FlashStock)
SOCIAL_WORKER = web.AppKey("social_worker", SocialWorker)

# Analytics: this node's buffered event writer and the live counters (growth/analytics).
ANALYTICS_WRITER = web.AppKey("analytics_writer", AnalyticsWriter)
ANALYTICS_LIVE = web.AppKey("analytics_live", LiveCounters)
# Customer service (WeChat message push, replies, agents): created by support.routes.
SUPPORT = web.AppKey("support", SupportContext)
