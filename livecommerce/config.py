"""Typed, immutable settings loaded from ``config.toml`` and the environment.

Precedence, lowest first: the defaults below (which ``config.toml`` at the repository root
documents one by one), the TOML file, then environment variables:

* ``LIVECOMMERCE_<SECTION>_<KEY>`` sets ``[section] key`` (``LIVECOMMERCE_DATABASE_URL``,
  ``LIVECOMMERCE_REDIS_URL``, ``LIVECOMMERCE_SECURITY_SECRET``, ...);
* ``PORT`` sets ``server.port`` (the Procfile/PaaS convention);
* ``LIVECOMMERCE_CONFIG`` names the TOML file (default ``./config.toml`` when it exists).

The models are frozen dataclasses; msgspec decodes the merged file + environment into them,
checking types and the ``Meta`` constraints on each field (ranges, lengths, patterns, enums).
What a field cannot say alone — URLs, cross-field and production rules — is :func:`_check`.
Any problem raises :class:`ConfigError` whose message is one line naming the key (and where
the value came from); the CLI prints it and exits with status 2.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from msgspec import Meta

ENV_PREFIX = "LIVECOMMERCE_"
# Environment names under the prefix that are not settings (tests, benchmarks, the file path).
RESERVED_ENV = ("LIVECOMMERCE_CONFIG", "LIVECOMMERCE_TEST_", "LIVECOMMERCE_BENCH_")
DEV_SECRET = "dev-only-insecure-secret-change-me-in-production"

Pos: TypeAlias = Annotated[int, Meta(gt=0)]
PosFloat: TypeAlias = Annotated[float, Meta(gt=0)]
NonNeg: TypeAlias = Annotated[int, Meta(ge=0)]
Port: TypeAlias = Annotated[int, Meta(ge=0, le=65535)]


class ConfigError(Exception):
    """A setting is unknown, mistyped or missing; the message is one line naming it."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: Port = 8080
    mode: Literal["development", "production"] = "development"
    shutdown_grace_seconds: PosFloat = 10.0
    log_format: Literal["auto", "json", "text"] = "auto"
    log_level: Annotated[str, Meta(pattern="^(?i:debug|info|warning|error)(?!\\n)$")] = "info"
    max_body_bytes: Pos = 1_048_576
    workers: Pos = 1
    request_head_timeout_seconds: PosFloat = 10.0
    request_body_timeout_seconds: PosFloat = 30.0
    max_unfinished_heads_per_ip: Pos = 256
    keepalive_timeout_seconds: PosFloat = 75.0


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    url: str = ""
    pool_min_size: NonNeg = 2
    pool_max_size: Pos = 10  # and >= pool_min_size
    command_timeout_seconds: PosFloat = 10.0


@dataclass(frozen=True, slots=True)
class RedisConfig:
    url: str = ""
    max_connections: Pos = 200
    pool_timeout_seconds: PosFloat = 5.0
    # A command (or a connect) with no answer within this long fails (redis-py TimeoutError, so a
    # request answers 503): a hung Redis never hangs a request. Not applied to subscriptions.
    command_timeout_seconds: PosFloat = 3.0


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    secret: str = ""
    token_ttl_seconds: Pos = 7 * 24 * 3600
    host_token_ttl_seconds: Pos = 24 * 3600
    # Bearer token of the admin REST endpoints (/api/admin/...); empty = those answer 403.
    admin_token: str = ""


@dataclass(frozen=True, slots=True)
class EmbeddedConfig:
    data_dir: str = ".livecommerce"
    start_timeout_seconds: PosFloat = 60.0


@dataclass(frozen=True, slots=True)
class WechatConfig:
    """The WeChat mini-program API (login, messages). Empty base_url in development = fake."""

    base_url: str = ""
    app_id: str = ""
    app_secret: str = ""
    timeout_seconds: PosFloat = 5.0
    max_attempts: Pos = 3
    retry_backoff_seconds: PosFloat = 0.2
    fake_port: Port = 0
    order_template_id: str = ""


@dataclass(frozen=True, slots=True)
class WechatPayConfig:
    """WeChat Pay v3 (prepay, query, close, refund, notifications). Empty in development =
    dev keys made at startup and the in-process fake WeChat Pay.

    ``merchant_key_file``/``merchant_serial``: the merchant API private key (PEM) that signs
    requests and ``paySign``, and its certificate serial. ``notify_url``: the public URL of
    ``/api/pay/wechat/notify`` (empty in development: the request's own origin).
    ``stale_prepay_seconds``: a prepay older than this whose order is still unpaid is queried
    (a lost notification); ``query_retry_seconds``: when WeChat Pay could not be asked about a
    due order, the next try; ``refund_retry_seconds``: first retry delay of a refund call
    (doubles per attempt, capped at ``refund_retry_max_seconds``).
    """

    mch_id: str = ""
    apiv3_key: str = ""
    platform_keys_dir: str = ""
    notify_max_age_seconds: Pos = 300
    api_url: str = "https://api.mch.weixin.qq.com"
    merchant_key_file: str = ""
    merchant_serial: str = ""
    notify_url: str = ""
    refund_notify_url: str = ""
    timeout_seconds: PosFloat = 10.0
    prepay_ttl_seconds: PosFloat = 7000.0
    stale_prepay_seconds: PosFloat = 120.0
    query_retry_seconds: PosFloat = 5.0
    refund_retry_seconds: PosFloat = 5.0
    refund_retry_max_seconds: PosFloat = 600.0


@dataclass(frozen=True, slots=True)
class OrdersConfig:
    payment_timeout_seconds: PosFloat = 900.0
    reaper_max_sleep_seconds: PosFloat = 30.0
    reaper_batch_size: Pos = 100
    max_quantity: Pos = 99


@dataclass(frozen=True, slots=True)
class RoomsConfig:
    history_max_messages: Pos = 2000
    history_max_age_seconds: PosFloat = 3600.0
    max_frame_bytes: Pos = 4096
    messages_per_second: PosFloat = 10.0
    max_connections_per_ip: Pos = 200
    max_connections_per_user: Pos = 5
    send_buffer_max_bytes: Pos = 262_144
    heartbeat_seconds: PosFloat = 20.0
    tick_seconds: PosFloat = 1.0
    comment_max_chars: Pos = 200
    comment_min_interval_seconds: PosFloat = 1.0
    like_max_per_message: Pos = 50
    bubble_default_seconds: Pos = 30


@dataclass(frozen=True, slots=True)
class TimerConfig:
    enabled: bool = True
    lease_seconds: PosFloat = 10.0
    max_lateness_seconds: PosFloat = 300.0
    late_after_ms: Pos = 1000
    claim_batch: Pos = 200
    lookahead_ms: Annotated[int, Meta(ge=0, le=1000)] = 20
    idle_recheck_seconds: PosFloat = 60.0
    reconcile_seconds: PosFloat = 5.0
    # Timer wheels (sorted sets) the schedules are split over, by schedule id; on a Redis
    # Cluster each has its own slot, so one hot sorted set is not one shard's load.
    wheel_shards: Annotated[int, Meta(ge=1, le=64)] = 1


@dataclass(frozen=True, slots=True)
class FlashSaleConfig:
    """Flash sales (秒杀): payment window of their orders, bubble stock updates, Redis TTL."""

    payment_timeout_seconds: PosFloat = 300.0
    max_per_user_limit: Pos = 10
    stock_update_min_interval_ms: NonNeg = 500
    redis_ttl_after_end_seconds: Pos = 7 * 24 * 3600
    stale_claim_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class PointsConfig:
    """The points ledger: earning rules, lot expiry, spending at checkout."""

    time_zone: str = "Asia/Shanghai"  # an IANA name
    checkin_points: Pos = 10
    share_points: Pos = 5
    share_daily_cap: Pos = 3
    purchase_points_per_yuan: NonNeg = 1
    lot_ttl_days: Pos = 365
    fen_per_point: Pos = 1
    max_discount_percent: Annotated[int, Meta(ge=0, le=100)] = 50
    expiring_soon_days: Pos = 30


@dataclass(frozen=True, slots=True)
class GroupsConfig:
    """Group buying (拼团): join rules, success notifications, the background worker."""

    one_open_group_per_offer: bool = True
    success_template_id: Annotated[str, Meta(min_length=1, max_length=128)] = "group_success"
    failed_template_id: Annotated[str, Meta(max_length=128)] = "group_failed"
    worker_max_sleep_seconds: PosFloat = 30.0
    worker_batch_size: Pos = 100


@dataclass(frozen=True, slots=True)
class AnalyticsConfig:
    """Event ingestion (``POST /api/events``, the socket's ``track`` frame), storage, reports."""

    retention_days: Annotated[int, Meta(ge=2, le=3660)] = 90
    partitions_ahead_days: Annotated[int, Meta(ge=1, le=60)] = 3
    max_batch_events: Annotated[int, Meta(ge=1, le=1000)] = 500
    max_batch_bytes: Annotated[int, Meta(ge=1024, le=8 * 1024 * 1024)] = 512 * 1024
    max_props_bytes: Annotated[int, Meta(ge=64, le=65536)] = 2048
    # Client times further than this from the (skew-corrected) receive time are clamped.
    max_future_seconds: Annotated[int, Meta(ge=0, le=86400)] = 3600
    max_past_seconds: Annotated[int, Meta(ge=60, le=30 * 86400)] = 2 * 86400
    buffer_max_events: Annotated[int, Meta(ge=1, le=10_000_000)] = 200_000
    flush_max_events: Annotated[int, Meta(ge=1, le=1_000_000)] = 5000
    flush_interval_ms: Annotated[int, Meta(ge=1, le=60_000)] = 50
    flushers: Annotated[int, Meta(ge=1, le=16)] = 1
    retry_after_seconds: Annotated[int, Meta(ge=1, le=3600)] = 1
    attribution_window_seconds: Annotated[int, Meta(ge=1, le=30 * 86400)] = 86400
    live_interval_seconds: Annotated[float, Meta(gt=0, le=1)] = 1.0
    maintenance_interval_seconds: PosFloat = 3600.0


@dataclass(frozen=True, slots=True)
class SupportConfig:
    """Customer service: the WeChat message push (Token, EncodingAESKey) and the reply worker.

    Empty ``token``/``encoding_aes_key`` in development = fixed dev values shared with the fake
    WeChat; production needs both. ``previous_encoding_aes_key`` is still accepted while WeChat
    switches to a new key (rotation)."""

    token: str = ""
    encoding_aes_key: str = ""
    previous_encoding_aes_key: str = ""
    # Replies to a 'transient' send failure (network, -1) are retried this many times in all.
    send_attempts: Pos = 3
    send_backoff_seconds: PosFloat = 0.5
    # How often a node looks for inbox rows / replies left unprocessed (a crash, a restart).
    sweep_seconds: PosFloat = 5.0
    # Misses in a row before the bot hands the buyer to a human.
    handoff_after_misses: Pos = 2
    max_orders_listed: Pos = 3
    # An agent's presence lease (renewed by their page) and how long after it ends their
    # conversations wait before going back to the queue.
    agent_lease_seconds: PosFloat = 60.0
    agent_grace_seconds: PosFloat = 60.0
    # A conversation queued, with an agent or closed that sees no message (buyer or agent) for
    # this long goes back to the bot (the transition is recorded; the agent's seat is freed).
    idle_seconds: PosFloat = 1800.0
    # When a reply cannot be sent because the buyer's window has closed: this subscribe-message
    # template tells them an answer is waiting (once per closed window; empty: off).
    waiting_template_id: str = ""
    waiting_page: str = "pages/support/index"
    # The shop (host id) that takes hand-offs whose shop the chat does not tell (0: none, they
    # wait in the admin's unscoped queue). See docs/support.md, "Which shop".
    default_host_id: NonNeg = 0


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerConfig = field(default_factory=ServerConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    embedded: EmbeddedConfig = field(default_factory=EmbeddedConfig)
    wechat: WechatConfig = field(default_factory=WechatConfig)
    wechatpay: WechatPayConfig = field(default_factory=WechatPayConfig)
    orders: OrdersConfig = field(default_factory=OrdersConfig)
    rooms: RoomsConfig = field(default_factory=RoomsConfig)
    timer: TimerConfig = field(default_factory=TimerConfig)
    flash_sale: FlashSaleConfig = field(default_factory=FlashSaleConfig)
    points: PointsConfig = field(default_factory=PointsConfig)
    groups: GroupsConfig = field(default_factory=GroupsConfig)
    analytics: AnalyticsConfig = field(default_factory=AnalyticsConfig)
    support: SupportConfig = field(default_factory=SupportConfig)

    @property
    def production(self) -> bool:
        return self.server.mode == "production"

    @property
    def secret(self) -> str:
        """The signing secret; development mode falls back to a fixed, loudly insecure one."""
        return self.security.secret or DEV_SECRET

    @property
    def uses_embedded(self) -> bool:
        return not (self.database.url and self.redis.url)

    def with_backends(self, database_url: str, redis_url: str) -> Settings:
        return dataclasses.replace(
            self,
            database=dataclasses.replace(self.database, url=database_url),
            redis=dataclasses.replace(self.redis, url=redis_url),
        )

    def with_server(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, server=dataclasses.replace(self.server, **changes))


# section -> key -> the field's type, with its Annotated constraints.
_FIELDS: dict[str, dict[str, Any]] = {
    name: typing.get_type_hints(cls, include_extras=True)
    for name, cls in typing.get_type_hints(Settings).items()
}


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from defaults, the TOML file and the environment.

    Raises:
        ConfigError: with a one-line message naming the offending key.
    """
    env = os.environ if env is None else env
    raw: dict[str, dict[str, Any]] = {}
    where: dict[str, str] = {}  # "section.key" -> the file or "env NAME" it came from
    for section, key, value, source, from_env in _entries(path, env):
        name = f"{section}.{key}"
        if key not in _FIELDS[section]:
            raise ConfigError(f"{name}: unknown setting ({source})")
        if from_env:
            value = _parse_env(name, value, source)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name}: must be a finite number, got {value!r} ({source})")
        raw.setdefault(section, {})[key] = value
        where[name] = source
    try:
        settings = msgspec.convert(raw, Settings)
    except msgspec.ValidationError as exc:
        message, _, path = str(exc).partition(" - at `$.")
        name = path.rstrip("`")
        section, _, key = name.partition(".")
        raise _error(name, message, raw[section][key], where[name]) from None
    _check(settings)
    return settings


def _entries(
    path: str | Path | None, env: Mapping[str, str]
) -> Iterator[tuple[str, str, Any, str, bool]]:
    """(section, key, value, source, from_env) from the TOML file, then the environment."""
    file = _config_path(path, env)
    if file is not None:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {file}: not valid TOML: {exc}") from None
        for section, table in data.items():
            if section not in _FIELDS:
                raise ConfigError(f"config file {file}: unknown section [{section}]")
            if not isinstance(table, dict):
                raise ConfigError(f"config file {file}: {section} must be a [section] table")
            for key, value in table.items():
                yield section, key, value, str(file), False
    for name, value in env.items():
        if name == "PORT":
            yield "server", "port", value, "env PORT", True
        elif name.startswith(ENV_PREFIX) and not name.startswith(RESERVED_ENV):
            rest = name[len(ENV_PREFIX) :].lower()
            sec = next((s for s in _FIELDS if rest.startswith(s + "_")), None)
            if sec is None:
                raise ConfigError(f"environment variable {name}: names no config section")
            yield sec, rest[len(sec) + 1 :], value, f"env {name}", True


def _config_path(path: str | Path | None, env: Mapping[str, str]) -> Path | None:
    if path is None and not env.get("LIVECOMMERCE_CONFIG"):
        default = Path("config.toml")
        return default if default.is_file() else None
    p = Path(path if path is not None else env["LIVECOMMERCE_CONFIG"])
    if not p.is_file():
        raise ConfigError(f"config file {p}: not found")
    return p


_BOOL_WORDS = {"yes": "true", "on": "true", "no": "false", "off": "false"}


def _parse_env(name: str, text: str, source: str) -> Any:
    """An environment string as the field's base type (its constraints are checked later).

    Numbers and booleans may have surrounding blanks; booleans also read yes/no/on/off/1/0.
    """
    section, _, key = name.partition(".")
    hint = _FIELDS[section][key]
    typ = typing.get_args(hint)[0] if typing.get_origin(hint) is Annotated else hint
    if typ is str:
        return text
    text = _BOOL_WORDS.get(text.strip().lower(), text.strip()) if typ is bool else text.strip()
    try:
        return msgspec.convert(text, typ, strict=False)
    except msgspec.ValidationError as exc:
        raise _error(name, str(exc), text, source) from None


def _error(name: str, message: str, value: Any, source: str) -> ConfigError:
    """msgspec's ``message`` about setting ``name`` (``section.key``) reworded as one line.

    ``Expected `int`, got `str``` -> ``expected int, got 'x'``; a failed constraint ->
    ``must be > 0, got 0`` (a two-sided range as ``0..65535``); a bad enum value lists the
    allowed ones.
    """
    section, _, key = name.partition(".")
    hint = _FIELDS[section][key]
    if m := re.fullmatch(r"Expected `(\w+)`, got `\w+`", message):
        detail = f"expected {m[1]}, got {value!r}"
    elif message.startswith("Invalid enum value"):
        detail = f"must be one of {', '.join(map(repr, typing.get_args(hint)))}, got {value!r}"
    elif message.startswith("Expected `"):  # e.g. "Expected `int` >= 0"
        rule = message.split("` ", 1)[-1].replace("matching regex", "a string matching")
        meta = getattr(hint, "__metadata__", (None,))[0]
        if isinstance(meta, Meta) and meta.ge is not None and meta.le is not None:
            rule = f"{meta.ge}..{meta.le}"
        detail = f"must be {rule}, got {value!r}"
    else:
        detail = message
    return ConfigError(f"{name}: {detail} ({source})")


def _check(s: Settings) -> None:
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
