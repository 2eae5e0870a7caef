"""The settings: one frozen dataclass per ``config.toml`` section, and :class:`Settings`.

Each field's default is the documented one (``config.toml`` lists them all); its ``Meta``
constraints (ranges, lengths, patterns) and ``Literal`` enums are what msgspec checks when
:mod:`~livecommerce.config.loading` decodes the file and the environment into these classes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeAlias

from msgspec import Meta

DEV_SECRET = "dev-only-insecure-secret-change-me-in-production"

Pos: TypeAlias = Annotated[int, Meta(gt=0)]
PosFloat: TypeAlias = Annotated[float, Meta(gt=0)]
NonNeg: TypeAlias = Annotated[int, Meta(ge=0)]
Port: TypeAlias = Annotated[int, Meta(ge=0, le=65535)]


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
