"""Typed, immutable settings loaded from ``config.toml`` and the environment.

Precedence, lowest first: the defaults in :mod:`~livecommerce.config.sections` (which
``config.toml`` at the repository root documents one by one), the TOML file, then environment
variables:

* ``LIVECOMMERCE_<SECTION>_<KEY>`` sets ``[section] key`` (``LIVECOMMERCE_DATABASE_URL``,
  ``LIVECOMMERCE_REDIS_URL``, ``LIVECOMMERCE_SECURITY_SECRET``, ...);
* ``PORT`` sets ``server.port`` (the Procfile/PaaS convention);
* ``LIVECOMMERCE_CONFIG`` names the TOML file (default ``./config.toml`` when it exists).

The models are frozen dataclasses; msgspec decodes the merged file + environment into them,
checking types and the ``Meta`` constraints on each field (ranges, lengths, patterns, enums).
What a field cannot say alone — URLs, cross-field and production rules — is
:func:`~livecommerce.config.checks.check_settings`. Any problem raises :class:`ConfigError`
whose message is one line naming the key (and where the value came from); the CLI prints it
and exits with status 2.

Modules, one thing each:

* :mod:`~livecommerce.config.sections` — the settings dataclasses, one per section, with their
  defaults and constraints, and :class:`Settings` gathering them;
* :mod:`~livecommerce.config.loading` — :func:`load_settings`: the TOML file and the
  environment merged and decoded, msgspec's errors reworded as one line;
* :mod:`~livecommerce.config.checks` — the rules across fields, URLs (and Redis Cluster seed
  lists), what production mode requires;
* :mod:`~livecommerce.config.errors` — :class:`ConfigError`.

The public names are re-exported here, so ``from livecommerce.config import <name>`` keeps
working.
"""

from __future__ import annotations

from livecommerce.config.checks import CLUSTER_SCHEMES
from livecommerce.config.errors import ConfigError
from livecommerce.config.loading import ENV_PREFIX, RESERVED_ENV, load_settings
from livecommerce.config.sections import (
    DEV_SECRET,
    AnalyticsConfig,
    DatabaseConfig,
    EmbeddedConfig,
    FlashSaleConfig,
    GroupsConfig,
    NonNeg,
    OrdersConfig,
    PointsConfig,
    Port,
    Pos,
    PosFloat,
    RedisConfig,
    RoomsConfig,
    SecurityConfig,
    ServerConfig,
    Settings,
    SupportConfig,
    TimerConfig,
    WechatConfig,
    WechatPayConfig,
)

__all__ = [
    "CLUSTER_SCHEMES",
    "DEV_SECRET",
    "ENV_PREFIX",
    "RESERVED_ENV",
    "AnalyticsConfig",
    "ConfigError",
    "DatabaseConfig",
    "EmbeddedConfig",
    "FlashSaleConfig",
    "GroupsConfig",
    "NonNeg",
    "OrdersConfig",
    "PointsConfig",
    "Port",
    "Pos",
    "PosFloat",
    "RedisConfig",
    "RoomsConfig",
    "SecurityConfig",
    "ServerConfig",
    "Settings",
    "SupportConfig",
    "TimerConfig",
    "WechatConfig",
    "WechatPayConfig",
    "load_settings",
]
