"""Typed, immutable settings loaded from ``config.toml`` and the environment.

Precedence, lowest first: the defaults below (which ``config.toml`` at the repository root
documents one by one), the TOML file, then environment variables:

* ``LIVECOMMERCE_<SECTION>_<KEY>`` sets ``[section] key`` (``LIVECOMMERCE_DATABASE_URL``,
  ``LIVECOMMERCE_REDIS_URL``, ``LIVECOMMERCE_SECURITY_SECRET``, ...);
* ``PORT`` sets ``server.port`` (the Procfile/PaaS convention);
* ``LIVECOMMERCE_CONFIG`` names the TOML file (default ``./config.toml`` when it exists).

Any problem — an unknown section or key, a value of the wrong type, a bad URL, a missing
secret in production mode — raises :class:`ConfigError` whose message is one line naming the
key; the CLI prints it and exits with status 2.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ENV_PREFIX = "LIVECOMMERCE_"
# Environment names under the prefix that are not settings (tests, benchmarks, the file path).
RESERVED_ENV = ("LIVECOMMERCE_CONFIG", "LIVECOMMERCE_TEST_", "LIVECOMMERCE_BENCH_")
DEV_SECRET = "dev-only-insecure-secret-change-me-in-production"


class ConfigError(Exception):
    """A setting is unknown, mistyped or missing; the message is one line naming it."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    mode: str = "development"
    shutdown_grace_seconds: float = 10.0
    log_format: str = "auto"
    log_level: str = "info"
    max_body_bytes: int = 1_048_576
    workers: int = 1
    request_head_timeout_seconds: float = 10.0
    request_body_timeout_seconds: float = 30.0
    max_unfinished_heads_per_ip: int = 256
    keepalive_timeout_seconds: float = 75.0


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    url: str = ""
    pool_min_size: int = 2
    pool_max_size: int = 10
    command_timeout_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class RedisConfig:
    url: str = ""
    max_connections: int = 200
    pool_timeout_seconds: float = 5.0


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    secret: str = ""
    token_ttl_seconds: int = 7 * 24 * 3600
    host_token_ttl_seconds: int = 24 * 3600


@dataclass(frozen=True, slots=True)
class EmbeddedConfig:
    data_dir: str = ".livecommerce"
    start_timeout_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class WechatConfig:
    """The WeChat mini-program API (login, messages). Empty base_url in development = fake."""

    base_url: str = ""
    app_id: str = ""
    app_secret: str = ""
    timeout_seconds: float = 5.0
    max_attempts: int = 3
    retry_backoff_seconds: float = 0.2
    fake_port: int = 0
    order_template_id: str = ""


@dataclass(frozen=True, slots=True)
class WechatPayConfig:
    """WeChat Pay v3 notifications. Empty in development = dev keys made at startup."""

    mch_id: str = ""
    apiv3_key: str = ""
    platform_keys_dir: str = ""
    notify_max_age_seconds: int = 300


@dataclass(frozen=True, slots=True)
class OrdersConfig:
    payment_timeout_seconds: float = 900.0
    reaper_max_sleep_seconds: float = 30.0
    reaper_batch_size: int = 100
    max_quantity: int = 99


@dataclass(frozen=True, slots=True)
class RoomsConfig:
    history_max_messages: int = 2000
    history_max_age_seconds: float = 3600.0
    max_frame_bytes: int = 4096
    messages_per_second: float = 10.0
    max_connections_per_ip: int = 200
    max_connections_per_user: int = 5
    send_buffer_max_bytes: int = 262_144
    heartbeat_seconds: float = 20.0
    tick_seconds: float = 1.0
    comment_max_chars: int = 200
    comment_min_interval_seconds: float = 1.0
    like_max_per_message: int = 50
    bubble_default_seconds: int = 30


@dataclass(frozen=True, slots=True)
class TimerConfig:
    enabled: bool = True
    lease_seconds: float = 10.0
    max_lateness_seconds: float = 300.0
    late_after_ms: int = 1000
    claim_batch: int = 200
    lookahead_ms: int = 20
    idle_recheck_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class FlashSaleConfig:
    """Flash sales (秒杀): payment window of their orders, bubble stock updates, Redis TTL."""

    payment_timeout_seconds: float = 300.0
    max_per_user_limit: int = 10
    stock_update_min_interval_ms: int = 500
    redis_ttl_after_end_seconds: int = 7 * 24 * 3600
    stale_claim_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class PointsConfig:
    """The points ledger: earning rules, lot expiry, spending at checkout."""

    time_zone: str = "Asia/Shanghai"
    checkin_points: int = 10
    share_points: int = 5
    share_daily_cap: int = 3
    purchase_points_per_yuan: int = 1
    lot_ttl_days: int = 365
    fen_per_point: int = 1
    max_discount_percent: int = 50
    expiring_soon_days: int = 30


@dataclass(frozen=True, slots=True)
class GroupsConfig:
    """Group buying (拼团): join rules, success notifications, the background worker."""

    one_open_group_per_offer: bool = True
    success_template_id: str = "group_success"
    worker_max_sleep_seconds: float = 30.0
    worker_batch_size: int = 100


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


_SECTIONS: dict[str, type[Any]] = {
    f.name: typing.get_type_hints(Settings)[f.name] for f in dataclasses.fields(Settings)
}


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from defaults, the TOML file and the environment.

    Raises:
        ConfigError: with a one-line message naming the offending key.
    """
    env = os.environ if env is None else env
    raw: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    sources: dict[tuple[str, str], str] = {}

    file = _config_path(path, env)
    if file is not None:
        for (section, key), value in _read_toml(file).items():
            raw[section][key] = value
            sources[(section, key)] = str(file)

    for name, value in env.items():
        target = _env_target(name)
        if target is None:
            continue
        raw[target[0]][target[1]] = _EnvValue(value)
        sources[target] = f"env {name}"

    sections = {
        name: _build_section(name, cls, raw[name], sources) for name, cls in _SECTIONS.items()
    }
    settings = Settings(**sections)
    _validate(settings)
    return settings


class _EnvValue(str):
    """A value from the environment: a string to be parsed into the field's type."""


def _config_path(path: str | Path | None, env: Mapping[str, str]) -> Path | None:
    if path is not None:
        p = Path(path)
    elif env.get("LIVECOMMERCE_CONFIG"):
        p = Path(env["LIVECOMMERCE_CONFIG"])
    else:
        default = Path("config.toml")
        return default if default.is_file() else None
    if not p.is_file():
        raise ConfigError(f"config file {p}: not found")
    return p


def _read_toml(file: Path) -> dict[tuple[str, str], Any]:
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {file}: not valid TOML: {exc}") from None
    out: dict[tuple[str, str], Any] = {}
    for section, table in data.items():
        if section not in _SECTIONS:
            raise ConfigError(f"config file {file}: unknown section [{section}]")
        if not isinstance(table, dict):
            raise ConfigError(f"config file {file}: {section} must be a [section] table")
        for key, value in table.items():
            out[(section, key)] = value
    return out


def _env_target(name: str) -> tuple[str, str] | None:
    if name == "PORT":
        return ("server", "port")
    if not name.startswith(ENV_PREFIX) or name.startswith(RESERVED_ENV):
        return None
    rest = name[len(ENV_PREFIX) :].lower()
    for section in _SECTIONS:
        if rest.startswith(section + "_"):
            return (section, rest[len(section) + 1 :])
    raise ConfigError(f"environment variable {name}: names no config section")


def _build_section(
    section: str, cls: type[Any], values: dict[str, Any], sources: dict[tuple[str, str], str]
) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        where = sources.get((section, key), "")
        if key not in hints:
            raise ConfigError(f"{section}.{key}: unknown setting ({where})")
        kwargs[key] = _coerce(f"{section}.{key}", hints[key], value, where)
    return cls(**kwargs)


def _coerce(name: str, typ: Any, value: Any, where: str) -> Any:
    from_env = isinstance(value, _EnvValue)
    try:
        if typ is bool:
            if from_env:
                lowered = value.strip().lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            if isinstance(value, bool):
                return value
        elif typ is int:
            if from_env:
                return int(value.strip())
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif typ is float:
            if from_env:
                return float(value.strip())
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        elif typ is str and isinstance(value, str):
            return str(value)
    except ValueError:
        pass
    raise ConfigError(f"{name}: expected {typ.__name__}, got {value!r} ({where})")


def _validate(s: Settings) -> None:
    if s.server.mode not in ("development", "production"):
        raise ConfigError(
            f"server.mode: must be 'development' or 'production', got {s.server.mode!r}"
        )
    if not 0 <= s.server.port <= 65535:
        raise ConfigError(f"server.port: must be 0..65535, got {s.server.port}")
    if s.server.log_format not in ("auto", "json", "text"):
        raise ConfigError(
            f"server.log_format: must be auto, json or text, got {s.server.log_format!r}"
        )
    if s.server.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"server.log_level: unknown level {s.server.log_level!r}")
    _positive("server.shutdown_grace_seconds", s.server.shutdown_grace_seconds)
    _positive("server.max_body_bytes", s.server.max_body_bytes)
    _positive("server.workers", s.server.workers)
    _positive("server.request_head_timeout_seconds", s.server.request_head_timeout_seconds)
    _positive("server.request_body_timeout_seconds", s.server.request_body_timeout_seconds)
    _positive("server.max_unfinished_heads_per_ip", s.server.max_unfinished_heads_per_ip)
    _positive("server.keepalive_timeout_seconds", s.server.keepalive_timeout_seconds)
    _positive("database.pool_min_size", s.database.pool_min_size + 1)
    if s.database.pool_max_size < max(1, s.database.pool_min_size):
        raise ConfigError("database.pool_max_size: must be >= database.pool_min_size and >= 1")
    _positive("database.command_timeout_seconds", s.database.command_timeout_seconds)
    _positive("redis.max_connections", s.redis.max_connections)
    _positive("redis.pool_timeout_seconds", s.redis.pool_timeout_seconds)
    _positive("security.token_ttl_seconds", s.security.token_ttl_seconds)
    _positive("security.host_token_ttl_seconds", s.security.host_token_ttl_seconds)
    _positive("embedded.start_timeout_seconds", s.embedded.start_timeout_seconds)
    for name in (
        "history_max_messages",
        "history_max_age_seconds",
        "max_frame_bytes",
        "messages_per_second",
        "max_connections_per_ip",
        "max_connections_per_user",
        "send_buffer_max_bytes",
        "heartbeat_seconds",
        "tick_seconds",
        "comment_max_chars",
        "comment_min_interval_seconds",
        "like_max_per_message",
        "bubble_default_seconds",
    ):
        _positive(f"rooms.{name}", getattr(s.rooms, name))
    for name in ("lease_seconds", "max_lateness_seconds", "late_after_ms", "claim_batch"):
        _positive(f"timer.{name}", getattr(s.timer, name))
    _positive("timer.idle_recheck_seconds", s.timer.idle_recheck_seconds)
    if not 0 <= s.timer.lookahead_ms <= 1000:
        raise ConfigError("timer.lookahead_ms: must be between 0 and 1000")
    if s.database.url:
        _check_url("database.url", s.database.url, ("postgres", "postgresql"))
    if s.redis.url:
        _check_url("redis.url", s.redis.url, ("redis", "rediss", "unix"))
    if bool(s.database.url) != bool(s.redis.url):
        missing = "redis.url" if s.database.url else "database.url"
        raise ConfigError(f"{missing}: set both database.url and redis.url, or neither (embedded)")
    if s.production:
        if not s.security.secret:
            raise ConfigError("security.secret: required in production mode")
        if len(s.security.secret) < 32 or s.security.secret == DEV_SECRET:
            raise ConfigError("security.secret: must be at least 32 characters and not the dev one")
        if s.uses_embedded:
            raise ConfigError("database.url: production mode needs external PostgreSQL and Redis")
    _validate_commerce(s)
    _validate_social(s)


def _validate_social(s: Settings) -> None:
    """Flash sale, points and group-buying settings."""
    f, p, g = s.flash_sale, s.points, s.groups
    for name in ("payment_timeout_seconds", "max_per_user_limit", "redis_ttl_after_end_seconds"):
        _positive(f"flash_sale.{name}", getattr(f, name))
    if f.stock_update_min_interval_ms < 0:
        raise ConfigError("flash_sale.stock_update_min_interval_ms: must be >= 0")
    try:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        ZoneInfo(p.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"points.time_zone: unknown time zone {p.time_zone!r}") from None
    for name in ("checkin_points", "share_points", "share_daily_cap", "lot_ttl_days"):
        _positive(f"points.{name}", getattr(p, name))
    for name in ("fen_per_point", "expiring_soon_days"):
        _positive(f"points.{name}", getattr(p, name))
    if p.purchase_points_per_yuan < 0:
        raise ConfigError("points.purchase_points_per_yuan: must be >= 0")
    if not 0 <= p.max_discount_percent <= 100:
        raise ConfigError(
            f"points.max_discount_percent: must be 0..100, got {p.max_discount_percent}"
        )
    if not 1 <= len(g.success_template_id) <= 128:
        raise ConfigError("groups.success_template_id: must be 1..128 characters")
    _positive("groups.worker_max_sleep_seconds", g.worker_max_sleep_seconds)
    _positive("groups.worker_batch_size", g.worker_batch_size)


def _validate_commerce(s: Settings) -> None:
    """WeChat, WeChat Pay and order settings; production needs the real WeChat endpoints."""
    w, p, o = s.wechat, s.wechatpay, s.orders
    if w.base_url:
        _check_url("wechat.base_url", w.base_url, ("http", "https"))
        for key in ("app_id", "app_secret"):
            if not getattr(w, key):
                raise ConfigError(f"wechat.{key}: required when wechat.base_url is set")
    if not 0 <= w.fake_port <= 65535:
        raise ConfigError(f"wechat.fake_port: must be 0..65535, got {w.fake_port}")
    _positive("wechat.timeout_seconds", w.timeout_seconds)
    _positive("wechat.max_attempts", w.max_attempts)
    _positive("wechat.retry_backoff_seconds", w.retry_backoff_seconds)
    if p.apiv3_key and len(p.apiv3_key.encode()) != 32:
        raise ConfigError("wechatpay.apiv3_key: must be exactly 32 bytes")
    if bool(p.mch_id) != bool(p.apiv3_key) or bool(p.apiv3_key) != bool(p.platform_keys_dir):
        raise ConfigError(
            "wechatpay.mch_id: set mch_id, apiv3_key and platform_keys_dir together, or none (dev)"
        )
    if p.platform_keys_dir and not Path(p.platform_keys_dir).is_dir():
        raise ConfigError(f"wechatpay.platform_keys_dir: not a directory: {p.platform_keys_dir}")
    _positive("wechatpay.notify_max_age_seconds", p.notify_max_age_seconds)
    _positive("orders.payment_timeout_seconds", o.payment_timeout_seconds)
    _positive("orders.reaper_max_sleep_seconds", o.reaper_max_sleep_seconds)
    _positive("orders.reaper_batch_size", o.reaper_batch_size)
    _positive("orders.max_quantity", o.max_quantity)
    if s.production:
        if not w.base_url:
            raise ConfigError("wechat.base_url: required in production mode (no fake WeChat)")
        if not p.mch_id:
            raise ConfigError("wechatpay.mch_id: required in production mode (no dev pay keys)")


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{name}: must be > 0, got {value}")


def _check_url(name: str, url: str, schemes: tuple[str, ...]) -> None:
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
