"""The customer-service state of one app: push credentials, crypto, client and worker."""

from __future__ import annotations

from dataclasses import dataclass

from livecommerce.support.crypto import MessageCrypt
from livecommerce.support.cs_client import CsClient
from livecommerce.support.feed import Feed
from livecommerce.support.worker import SupportWorker

# Development defaults (no support.token configured, not production): shared with the fake
# WeChat so injected messages are signed and encrypted like WeChat's.
DEV_TOKEN = "livecommercedevtoken"
DEV_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@dataclass(slots=True)
class SupportContext:
    token: str
    crypt: MessageCrypt | None
    client: CsClient
    worker: SupportWorker
    feed: Feed
