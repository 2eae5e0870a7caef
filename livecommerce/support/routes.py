"""The customer-service route table and its resources (push crypto, send client, worker).

``setup(app)`` is called once from ``create_app``, after the commerce setup (it reuses the WeChat
base URL and app credentials of ``keys.WECHAT_CLIENT``). In development with no
``support.token`` the fixed dev token and EncodingAESKey are used and handed to the in-process
fake WeChat, whose ``/dev/support/push`` sends messages signed and encrypted like WeChat's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from livecommerce import keys
from livecommerce.aio import running
from livecommerce.api import openapi
from livecommerce.api.contract import AGENT, HOST, RawResponse, add_routes, raw_route, route
from livecommerce.commerce.wechat_client import MessageFailed, MessageRefused, WechatClient
from livecommerce.console import pages
from livecommerce.support import (
    admin_api,
    agent_api,
    agent_session_api,
    agents_api,
    canned_api,
    faq,
    faq_api,
    feed_api,
    push_api,
    replies,
)
from livecommerce.support.context import DEV_AES_KEY, DEV_TOKEN, SupportContext
from livecommerce.support.crypto import MessageCrypt
from livecommerce.support.cs_client import CsClient
from livecommerce.support.feed import Feed
from livecommerce.support.sender import FollowUp
from livecommerce.support.worker import SupportWorker

log = logging.getLogger("livecommerce.support")
PUSH_PATH = "/api/support/wechat/push"


async def support_ctx(app: web.Application) -> AsyncIterator[None]:
    """Credentials, the send client and this node's worker (started, then stopped and awaited)."""
    settings = app[keys.SETTINGS]
    cfg = settings.support
    wechat = app[keys.WECHAT_CLIENT]
    token, aes_key, previous = cfg.token, cfg.encoding_aes_key, cfg.previous_encoding_aes_key
    if not token and not settings.production:
        token, aes_key = DEV_TOKEN, aes_key or DEV_AES_KEY
    crypt = MessageCrypt.from_settings(wechat.app_id, aes_key, previous) if aes_key else None
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=settings.wechat.timeout_seconds)
    )
    client = CsClient(session, wechat.base_url, wechat.app_id, wechat.app_secret)
    worker = SupportWorker(
        app[keys.PG_POOL],
        client,
        replies.decider(app[keys.PG_POOL], settings),
        sweep_seconds=cfg.sweep_seconds,
        send_attempts=cfg.send_attempts,
        send_backoff=cfg.send_backoff_seconds,
        agent_grace=cfg.agent_grace_seconds,
        idle_seconds=cfg.idle_seconds,
        follow_up=_follow_up(wechat, cfg.waiting_template_id, cfg.waiting_page),
    )
    feed = Feed(app[keys.PG_POOL], app[keys.REDIS], cfg.agent_lease_seconds)
    worker.feed = feed
    await asyncio.to_thread(faq.init)  # jieba's dictionary: once per process, off the loop
    app[keys.SUPPORT] = SupportContext(
        token=token, crypt=crypt, client=client, worker=worker, feed=feed
    )
    fake = app.get(keys.FAKE_WECHAT)
    if fake is not None and crypt is not None:
        assert fake.cs is not None  # made with the fake app
        fake.cs.token, fake.cs.crypt = token, crypt
    try:
        async with running(worker.run(), "support-worker"), running(feed.run(), "support-feed"):
            yield
            feed.close_all()  # agents' pages reconnect (to another node)
    finally:
        await session.close()


def _follow_up(wechat: WechatClient, template: str, page: str) -> FollowUp | None:
    """The "an answer is waiting" subscribe message, or None when no template is set."""
    if not template:
        return None

    async def follow_up(openid: str) -> None:
        try:
            await wechat.send_subscribe(openid, template, page, {"thing1": "客服已回复您的咨询"})
        except (MessageRefused, MessageFailed) as exc:  # best effort: logged, not retried
            log.info("waiting-answer message to %s not sent: %s", openid[:8], exc)

    return follow_up


def setup(app: web.Application) -> None:
    """Add the customer-service routes and cleanup context (after the commerce one)."""
    app.cleanup_ctx.append(support_ctx)
    add_routes(app, ROUTES)


CONV = "/api/agent/conversations/{id}"
HTML = (RawResponse(200, "An HTML page", "text/html"),)

ROUTES = (
    raw_route("GET", PUSH_PATH, push_api.verify, query=push_api.VerifyQuery, errors=(401,),
              tag="support",
              responses=(RawResponse(200, "The echostr, as plain text", "text/plain"),)),
    raw_route("POST", PUSH_PATH, push_api.receive, query=push_api.PushQuery, errors=(401,),
              tag="support",
              rules=("the body is not a WeChat XML or JSON message",),
              responses=(RawResponse(200, "`success` (stored; processed after this answer)",
                                     "text/plain"),)),
    route("GET", "/api/host/support/faq", faq_api.list_mine, auth=HOST, tag="support"),
    route("POST", "/api/host/support/faq", faq_api.create, auth=HOST, status=201, tag="support"),
    route("DELETE", "/api/host/support/faq/{id}", faq_api.delete, auth=HOST, tag="support"),
    # The host: their shop's agents, queue and canned replies.
    route("POST", "/api/host/support/agents", agents_api.create_agent, auth=HOST, status=201,
          errors=(409,), tag="support"),
    route("GET", "/api/host/support/agents", agents_api.list_agents, auth=HOST, tag="support"),
    route("PATCH", "/api/host/support/agents/{id}", agents_api.update_agent, auth=HOST,
          errors=(404, 409), tag="support"),
    route("DELETE", "/api/host/support/agents/{id}", agents_api.delete_agent, auth=HOST,
          errors=(404,), tag="support"),
    route("GET", "/api/host/support/queue", agents_api.queue, auth=HOST, tag="support"),
    route("GET", "/api/host/support/canned", canned_api.list_, auth=HOST, tag="support"),
    route("POST", "/api/host/support/canned", canned_api.create, auth=HOST, status=201,
          errors=(409,), tag="support"),
    route("PUT", "/api/host/support/canned/{id}", canned_api.update, auth=HOST, errors=(404,),
          tag="support"),
    route("DELETE", "/api/host/support/canned/{id}", canned_api.delete, auth=HOST,
          errors=(404,), tag="support"),
    # The agent, signed in on their own (docs/support.md).
    raw_route("GET", "/agent", pages.agent_page, tag="pages", responses=HTML),
    route("POST", "/api/agent/session", agent_session_api.sign_in, status=201, tag="agent",
          errors=(401, 403, 429)),
    route("GET", "/api/agent/session", agent_session_api.current, auth=AGENT, tag="agent",
          errors=(404,)),
    route("DELETE", "/api/agent/session", agent_session_api.sign_out, auth=AGENT, tag="agent"),
    raw_route("GET", "/api/agent/feed", feed_api.feed, auth=AGENT, tag="agent", responses=(
        RawResponse(101, "Switching to WebSocket; the first frame is `hello` (docs/support.md)"),
        RawResponse(400, "Not a WebSocket upgrade (`websocket_expected`)", "application/json",
                    openapi.Error),
        RawResponse(401, "No or a bad agent session", "application/json", openapi.Error),
        RawResponse(403, "Not an agent, or a socket from another origin", "application/json",
                    openapi.Error),
        RawResponse(404, "The agent account is gone", "application/json", openapi.Error),
    ), rules=("not a WebSocket upgrade (`websocket_expected`): a plain HTTP client always is",)),
    route("POST", "/api/agent/presence", agent_api.presence, auth=AGENT, tag="agent",
          errors=(404,)),
    route("GET", "/api/agent/queue", agent_api.queue, auth=AGENT, tag="agent", errors=(404,)),
    route("GET", "/api/agent/conversations", agent_api.mine, auth=AGENT, tag="agent"),
    route("GET", "/api/agent/agents", agent_api.colleagues, auth=AGENT, tag="agent",
          errors=(404,)),
    route("GET", CONV, agent_api.history, auth=AGENT, tag="agent", errors=(404,)),
    route("POST", CONV + "/claim", agent_api.claim, auth=AGENT, errors=(404, 409), tag="agent"),
    route("POST", CONV + "/reply", agent_api.reply, auth=AGENT, status=201, errors=(404, 409),
          tag="agent"),
    route("POST", CONV + "/transfer", agent_api.transfer, auth=AGENT, errors=(404, 409),
          tag="agent"),
    route("POST", CONV + "/close", agent_api.close, auth=AGENT, errors=(404, 409), tag="agent"),
    route("GET", "/api/agent/canned", canned_api.agent_list, auth=AGENT, tag="agent",
          errors=(404,)),
    route("POST", "/api/agent/canned", canned_api.agent_create, auth=AGENT, status=201,
          errors=(404, 409), tag="agent"),
    route("PUT", "/api/agent/canned/{id}", canned_api.agent_update, auth=AGENT, errors=(404,),
          tag="agent"),
    route("DELETE", "/api/agent/canned/{id}", canned_api.agent_delete, auth=AGENT,
          errors=(404,), tag="agent"),
    # The admin: conversations no shop could be derived for.
    route("GET", "/api/admin/support/unscoped", admin_api.unscoped, admin=True, tag="admin"),
    route("POST", "/api/admin/support/conversations/{id}/shop", admin_api.set_shop, admin=True,
          tag="admin", errors=(404, 409)),
)  # fmt: skip
