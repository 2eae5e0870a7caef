"""Building :class:`Settings` from the defaults, the TOML file and the environment.

Precedence and the environment names are described in :mod:`livecommerce.config`. Decoding
errors are reworded here as one-line :class:`ConfigError` messages; the rules across fields
are :func:`~livecommerce.config.checks.check_settings`.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from livecommerce.config.checks import check_settings
from livecommerce.config.errors import ConfigError
from livecommerce.config.sections import Settings

ENV_PREFIX = "LIVECOMMERCE_"
# Environment names under the prefix that are not settings (tests, benchmarks, the file path).
RESERVED_ENV = ("LIVECOMMERCE_CONFIG", "LIVECOMMERCE_TEST_", "LIVECOMMERCE_BENCH_")


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
    check_settings(settings)
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
