"""Checks of decoded settings that no field's type or ``Meta`` can state alone.

:mod:`~livecommerce.config.loading` runs :func:`check_settings` on the :class:`Settings` msgspec
decoded; a broken rule raises :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from livecommerce.config.errors import ConfigError
from livecommerce.config.sections import DEV_SECRET, Settings


def check_settings(s: Settings) -> None:
    """The rules no single field states: URLs, fields that go together, production needs."""
    db, w, pay = s.database, s.wechat, s.wechatpay
    if db.pool_max_size < db.pool_min_size:
        raise ConfigError("database.pool_max_size: must be >= database.pool_min_size and >= 1")
    for name, url, schemes in (
        ("database.url", db.url, ("postgres", "postgresql")),
        ("redis.url", s.redis.url, ("redis", "rediss", "unix", *CLUSTER_SCHEMES)),
        ("wechat.base_url", w.base_url, ("http", "https")),
    ):
        if url:
            _check_url(name, url, schemes)
    if bool(db.url) != bool(s.redis.url):
        missing = "redis.url" if db.url else "database.url"
        raise ConfigError(f"{missing}: set both database.url and redis.url, or neither (embedded)")
    if w.base_url:
        for key in ("app_id", "app_secret"):
            if not getattr(w, key):
                raise ConfigError(f"wechat.{key}: required when wechat.base_url is set")
    if pay.apiv3_key and len(pay.apiv3_key.encode()) != 32:
        raise ConfigError("wechatpay.apiv3_key: must be exactly 32 bytes")
    if len({bool(pay.mch_id), bool(pay.apiv3_key), bool(pay.platform_keys_dir)}) > 1:
        raise ConfigError(
            "wechatpay.mch_id: set mch_id, apiv3_key and platform_keys_dir together, or none (dev)"
        )
    if pay.platform_keys_dir and not Path(pay.platform_keys_dir).is_dir():
        raise ConfigError(f"wechatpay.platform_keys_dir: not a directory: {pay.platform_keys_dir}")
    if pay.mch_id:
        for key in ("merchant_key_file", "merchant_serial", "notify_url"):
            if not getattr(pay, key):
                raise ConfigError(f"wechatpay.{key}: required when wechatpay.mch_id is set")
        if not Path(pay.merchant_key_file).is_file():
            raise ConfigError(f"wechatpay.merchant_key_file: not a file: {pay.merchant_key_file}")
    for name, url in (
        ("wechatpay.api_url", pay.api_url),
        ("wechatpay.notify_url", pay.notify_url),
        ("wechatpay.refund_notify_url", pay.refund_notify_url),
    ):
        if url:
            _check_url(name, url, ("http", "https"))
    if s.analytics.max_past_seconds > (s.analytics.retention_days - 1) * 86400:
        raise ConfigError("analytics.max_past_seconds: must be below analytics.retention_days - 1")
    if s.analytics.buffer_max_events < s.analytics.max_batch_events:
        # A full batch would never fit: 503 buffer_full forever.
        raise ConfigError(
            "analytics.buffer_max_events: must be at least analytics.max_batch_events "
            f"({s.analytics.max_batch_events})"
        )
    for key in ("encoding_aes_key", "previous_encoding_aes_key"):
        value = getattr(s.support, key)
        if value and not re.fullmatch(r"[A-Za-z0-9+/]{43}", value):
            raise ConfigError(f"support.{key}: must be 43 base64 characters (WeChat's format)")
    try:
        ZoneInfo(s.points.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"points.time_zone: unknown time zone {s.points.time_zone!r}") from None
    if s.production:
        if not s.security.secret:
            raise ConfigError("security.secret: required in production mode")
        if len(s.security.secret) < 32 or s.security.secret == DEV_SECRET:
            raise ConfigError("security.secret: must be at least 32 characters and not the dev one")
        if s.uses_embedded:
            raise ConfigError("database.url: production mode needs external PostgreSQL and Redis")
        if not w.base_url:
            raise ConfigError("wechat.base_url: required in production mode (no fake WeChat)")
        if not pay.mch_id:
            raise ConfigError("wechatpay.mch_id: required in production mode (no dev pay keys)")


# redis.url naming a Redis/Valkey Cluster by seed nodes: redis+cluster://[:pass@]h1:p1,h2:p2
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


def _check_url(name: str, url: str, schemes: tuple[str, ...]) -> None:
    scheme = url.split("://", 1)[0].lower()
    if scheme in CLUSTER_SCHEMES and scheme in schemes:
        seeds = urlsplit(url).netloc.rpartition("@")[2].split(",")
        for seed in seeds:
            host, sep, port = seed.rpartition(":")
            if not host or not sep or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(f"{name}: cluster seed {seed!r} must be host:port")
        return
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a non-numeric port
    except ValueError as exc:
        raise ConfigError(f"{name}: not a valid URL ({exc})") from None
    if parts.scheme not in schemes:
        raise ConfigError(
            f"{name}: scheme must be one of {', '.join(schemes)}, got {parts.scheme!r}"
        )
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError(f"{name}: URL has no host")
