"""Configuration: defaults, file, environment, and one-line errors with exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from livecommerce.config import ConfigError, Settings, load_settings
from tests.support import ROOT, child_env, run_cli


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_config_toml_documents_exactly_the_defaults() -> None:
    """The shipped config.toml sets every field to its default: docs and code cannot drift."""
    text = (ROOT / "config.toml").read_text()
    assert load_settings(ROOT / "config.toml", env={}) == Settings()
    for section, cls in Settings.__dataclass_fields__.items():
        assert f"[{section}]" in text
        for key in cls.default_factory().__dataclass_fields__:  # type: ignore[misc]
            assert f"\n{key} = " in text, f"{section}.{key} undocumented"


def test_environment_overrides_file(tmp_path: Path) -> None:
    """LIVECOMMERCE_<SECTION>_<KEY> and PORT override the file, with type conversion."""
    cfg = write(tmp_path, "[server]\nport = 9000\nshutdown_grace_seconds = 3\n")
    s = load_settings(
        cfg,
        env={
            "PORT": "9100",
            "LIVECOMMERCE_SERVER_LOG_LEVEL": "debug",
            "LIVECOMMERCE_DATABASE_POOL_MAX_SIZE": "20",
            "LIVECOMMERCE_TEST_DATABASE_URL": "ignored",
        },
    )
    assert s.server.port == 9100
    assert s.server.shutdown_grace_seconds == 3.0
    assert s.server.log_level == "debug"
    assert s.database.pool_max_size == 20


@pytest.mark.parametrize(
    ("text", "env", "needle"),
    [
        ("[server]\nprot = 1\n", {}, "server.prot: unknown setting"),
        ("[serve]\nport = 1\n", {}, "unknown section [serve]"),
        ('[server]\nport = "eighty"\n', {}, "server.port: expected int"),
        ("[server]\nport = true\n", {}, "server.port: expected int"),
        ("[server]\nport = 70000\n", {}, "server.port: must be 0..65535"),
        ("[server\n", {}, "not valid TOML"),
        ("", {"PORT": "x"}, "server.port: expected int, got 'x' (env PORT)"),
        ("", {"LIVECOMMERCE_SERVR_PORT": "1"}, "LIVECOMMERCE_SERVR_PORT: names no config section"),
        (
            "",
            {"LIVECOMMERCE_DATABASE_URL": "mysql://x/y", "LIVECOMMERCE_REDIS_URL": "redis://h"},
            "database.url: scheme",
        ),
        (
            "",
            {
                "LIVECOMMERCE_DATABASE_URL": "postgresql://h:xx/d",
                "LIVECOMMERCE_REDIS_URL": "redis://h",
            },
            "database.url: not a valid URL",
        ),
        ("", {"LIVECOMMERCE_DATABASE_URL": "postgresql://h/d"}, "redis.url: set both"),
        ('[server]\nmode = "production"\n', {}, "security.secret: required in production"),
        ('[server]\nmode = "prod"\n', {}, "server.mode"),
        ("[database]\npool_min_size = 5\npool_max_size = 2\n", {}, "database.pool_max_size"),
        ("[timer]\nlookahead_ms = -1\n", {}, "timer.lookahead_ms"),
        ("[analytics]\nbuffer_max_events = 10\n", {}, "analytics.buffer_max_events: must be at"),
    ],
)
def test_bad_config_names_the_key(
    tmp_path: Path, text: str, env: dict[str, str], needle: str
) -> None:
    """Each kind of bad setting raises ConfigError naming the key, on one line."""
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), env=env)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "env", "needle"),
    [
        ("", {"PORT": "70000"}, "server.port: must be 0..65535, got 70000 (env PORT)"),
        ("[rooms]\ntick_seconds = 0\n", {}, "rooms.tick_seconds: must be > 0.0, got 0 ("),
        (
            "[points]\nmax_discount_percent = 101\n",
            {},
            "points.max_discount_percent: must be 0..100",
        ),
        ('[server]\nlog_format = "xml"\n', {}, "one of 'auto', 'json', 'text', got 'xml' ("),
        ('[server]\nlog_level = "loud"\n', {}, "server.log_level: must be a string matching"),
        (
            '[groups]\nsuccess_template_id = ""\n',
            {},
            "groups.success_template_id: must be of length",
        ),
        ("", {"LIVECOMMERCE_TIMER_ENABLED": "maybe"}, "timer.enabled: expected bool, got 'maybe'"),
        (
            "",
            {"LIVECOMMERCE_SERVER_BOGUS": "1"},
            "server.bogus: unknown setting (env LIVECOMMERCE_",
        ),
    ],
)
def test_model_constraints_name_key_rule_and_source(
    tmp_path: Path, text: str, env: dict[str, str], needle: str
) -> None:
    """Ranges, enums, patterns and lengths on the models give one line: key, rule, value, source."""
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), env=env)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "env", "needle"),
    [
        (
            "",
            {"LIVECOMMERCE_TIMER_LEASE_SECONDS": "inf"},
            "timer.lease_seconds: must be a finite number, got inf (env LIVECOMMERCE_",
        ),
        ("[rooms]\nheartbeat_seconds = inf\n", {}, "rooms.heartbeat_seconds: must be a finite"),
        ("", {"LIVECOMMERCE_ROOMS_TICK_SECONDS": "-inf"}, "rooms.tick_seconds: must be a finite"),
    ],
)
def test_infinite_float_is_a_config_error(
    tmp_path: Path, text: str, env: dict[str, str], needle: str
) -> None:
    """``inf`` passed ``> 0`` and later crashed startup (int(inf * 1000)) with a traceback."""
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), env=env)
    assert needle in str(info.value)


@pytest.mark.parametrize(
    ("word", "value"),
    [("yes", True), (" off ", False), ("1", True), ("FALSE", False), ("on", True)],
)
def test_env_boolean_words(tmp_path: Path, word: str, value: bool) -> None:
    """A boolean from the environment reads true/false, yes/no, on/off or 1/0, any case."""
    s = load_settings(write(tmp_path, ""), env={"LIVECOMMERCE_TIMER_ENABLED": word})
    assert s.timer.enabled is value


def test_production_needs_external_backends(tmp_path: Path) -> None:
    """Production mode refuses the embedded servers and a short secret."""
    secret = "s" * 40
    with pytest.raises(ConfigError, match=r"database\.url: production"):
        load_settings(
            write(tmp_path, f'[server]\nmode = "production"\n[security]\nsecret = "{secret}"\n'),
            env={},
        )
    with pytest.raises(ConfigError, match="at least 32"):
        load_settings(
            write(tmp_path, '[server]\nmode = "production"\n[security]\nsecret = "short"\n'), env={}
        )


def test_url_password_never_in_error(tmp_path: Path) -> None:
    """A bad URL's message does not echo its password."""
    with pytest.raises(ConfigError) as info:
        load_settings(
            env={
                "LIVECOMMERCE_DATABASE_URL": "mysql://u:hunter2@h/d",
                "LIVECOMMERCE_REDIS_URL": "redis://h",
            }
        )
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "env", "needle"),
    [
        ("[server]\nbogus = 1\n", {}, "server.bogus: unknown setting"),
        ('[server]\nport = "x"\n', {}, "server.port: expected int"),
        (
            "",
            {"LIVECOMMERCE_DATABASE_URL": "postgres://", "LIVECOMMERCE_REDIS_URL": "redis://h"},
            "database.url: URL has no host",
        ),
    ],
)
def test_cli_bad_config_exits_2_with_one_line(
    tmp_path: Path, text: str, env: dict[str, str], needle: str
) -> None:
    """`serve` with bad config prints one line naming the key, exits 2, shows no traceback."""
    cfg = write(tmp_path, text)
    result = run_cli("--config", str(cfg), "serve", env=child_env(**env), cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_help_for_every_subcommand(tmp_path: Path) -> None:
    """--help works on the tool and each subcommand."""
    for args in ([], ["serve"], ["migrate"], ["seed-demo"]):
        result = run_cli(*args, "--help", env=child_env(), cwd=tmp_path, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "usage: livecommerce" in result.stdout
