"""``livecommerce`` command line: serve, migrate, seed-demo.

Exit codes: 0 success, 1 runtime failure (a backend could not start, a migration failed),
2 bad configuration or usage — always with one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import asyncpg

from livecommerce import __version__, gctune, keys
from livecommerce.app import create_app
from livecommerce.auth.tokens import issue_token
from livecommerce.config import ConfigError, Settings, load_settings
from livecommerce.console.hosts import (
    DEMO_PASSWORD,
    Host,
    create_host,
    ensure_password,
    new_password,
    set_password,
)
from livecommerce.console.passwords import MAX_LENGTH, MIN_LENGTH
from livecommerce.db import connect, ensure_database, redact
from livecommerce.devtools.demo import DEMO_HOST, demo_base_url, ensure_host, seed_demo
from livecommerce.embedded import EmbeddedBackends, EmbeddedError, running_urls
from livecommerce.errors import AppError
from livecommerce.http_server import make_runner
from livecommerce.logs import setup_logging
from livecommerce.migrations import MigrationError, migrate
from livecommerce.realtime.site import start_site
from livecommerce.workers import run_workers

log = logging.getLogger("livecommerce.cli")
T = TypeVar("T")


class CliError(Exception):
    """A failure reported as one line on stderr with exit code 1."""


def say(message: str) -> None:
    print(f"livecommerce: {message}", flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livecommerce",
        description="Live-commerce server: live rooms over WebSocket, scheduled pushes, commerce.",
    )
    parser.add_argument("--version", action="version", version=f"livecommerce {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="TOML config file (default: $LIVECOMMERCE_CONFIG or ./config.toml)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the HTTP + WebSocket server",
        description="Run the server. With no database/redis URL configured, start the embedded "
        "PostgreSQL and Valkey in the data dir, restart either if it dies, and stop them on exit.",
    )
    serve.add_argument("--host", help="listen address (default: server.host)")
    serve.add_argument(
        "--port", type=int, help="listen port, 0 for any free one (default: $PORT or server.port)"
    )
    serve.add_argument("--seed-demo", action="store_true", help="insert the demo data if absent")
    serve.add_argument("--no-migrate", action="store_true", help="skip migrations at start")
    serve.add_argument(
        "--workers",
        type=int,
        help="server processes sharing the port (SO_REUSEPORT; default: server.workers)",
    )
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(func=cmd_serve)

    mig = sub.add_parser(
        "migrate",
        help="apply pending schema migrations",
        description="Apply pending schema migrations and exit.",
    )
    mig.set_defaults(func=cmd_migrate)

    seed = sub.add_parser(
        "seed-demo",
        help="insert demo data (idempotent)",
        description="Migrate, then insert the demo host, goods and live room unless present.",
    )
    seed.set_defaults(func=cmd_seed_demo)

    ht = sub.add_parser(
        "host-token",
        help="print a host token (creating the host if missing)",
        description="Print a signed host token for NAME, creating the host if it does not exist. "
        "Needs database.url (or a stopped embedded default: the data dir is locked while serving).",
    )
    ht.add_argument("name", help="host name (1..100 characters)")
    ht.set_defaults(func=cmd_host_token)

    host = sub.add_parser(
        "host",
        help="host accounts for the console: create, reset-password",
        description="Manage console host accounts. Works while a server runs on the same data "
        "(the embedded default: it connects to the running backends).",
    )
    host_sub = host.add_subparsers(dest="host_command", required=True, metavar="ACTION")
    hc = host_sub.add_parser(
        "create", help="create a host and print its password",
        description="Create a host account; prints the generated password (or reads one from "
        "stdin with --password-stdin). Exit 1 if the name is taken.",
    )  # fmt: skip
    hc.add_argument("name", help="host name (1..100 characters)")
    hc.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    hc.set_defaults(func=cmd_host_create)
    hr = host_sub.add_parser(
        "reset-password", help="set a new password and print it",
        description="Set a host's password (generated, or from stdin with --password-stdin).",
    )  # fmt: skip
    hr.add_argument("name", help="host name")
    hr.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    hr.set_defaults(func=cmd_host_reset)

    lt = sub.add_parser(
        "loadtest",
        help="drive a swarm of viewers against a server and measure fan-out",
        description="Connect N viewers (several worker processes and loopback source addresses), "
        "push goods, and report push latency (HDR percentiles, last viewer per push), missing and "
        "duplicate frames by seq, connects/s, failures, churn resumes and server memory per "
        "viewer. "
        "Exit 1 if any frame was missing or duplicated.",
    )
    from livecommerce.loadtest.command import add_arguments as add_loadtest_arguments

    add_loadtest_arguments(lt)
    lt.set_defaults(func=cmd_loadtest)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        overrides: dict[str, Any] = {}
        if getattr(args, "host", None):
            overrides["host"] = args.host
        if getattr(args, "port", None) is not None:
            if not 0 <= args.port <= 65535:
                raise ConfigError(f"--port: must be 0..65535, got {args.port}")
            overrides["port"] = args.port
        if overrides:
            settings = settings.with_server(**overrides)
    except ConfigError as exc:
        print(f"livecommerce: config error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.server.log_format, settings.server.log_level)
    func: Callable[[argparse.Namespace, Settings], int] = args.func
    try:
        return func(args, settings)
    except (CliError, EmbeddedError, MigrationError) as exc:
        print(f"livecommerce: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


@contextlib.contextmanager
def backends(
    settings: Settings, *, share: bool = False, supervise: bool = False
) -> Iterator[Settings]:
    """Yield settings pointing at real backends: the configured ones, or embedded ones.

    ``share``: when a server already runs the embedded backends of this data dir, use them
    (for short admin commands) instead of failing on the data dir's lock. ``supervise``: restart
    an embedded server that dies while we run (``serve``; see
    ``livecommerce/embedded/supervision.py``)."""
    running = running_urls(settings.embedded.data_dir) if settings.uses_embedded else None
    if share and running is not None:
        say(f"using the running server's PostgreSQL {redact(running.database_url)}")
        yield settings.with_backends(running.database_url, running.redis_url)
        return
    if not settings.uses_embedded:
        say(f"PostgreSQL: external {redact(settings.database.url)}")
        say(f"Redis: external {redact(settings.redis.url)}")
        yield settings
        return
    emb = EmbeddedBackends(
        settings.embedded.data_dir,
        start_timeout=settings.embedded.start_timeout_seconds,
        log=say,
        supervise=supervise,
    )
    urls = emb.start()
    try:
        say(f"PostgreSQL: embedded {redact(urls.database_url)}")
        say(f"Redis: embedded (Valkey) {redact(urls.redis_url)}")
        if supervise:
            say("embedded PostgreSQL and Valkey are supervised: restarted if they die")
        yield settings.with_backends(urls.database_url, urls.redis_url)
    finally:
        say("stopping embedded PostgreSQL and Valkey")
        emb.stop()


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(coro: Awaitable[T]) -> T:
    loop = new_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def prepare_database(settings: Settings, *, embedded: bool, seed: bool) -> None:
    """Create the embedded database if needed, apply migrations, optionally seed the demo."""
    try:
        if embedded:
            await ensure_database(settings.database.url)
        conn = await connect(settings.database.url)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise CliError(
            f"cannot reach PostgreSQL at {redact(settings.database.url)}: {exc}"
        ) from None
    try:
        applied = await migrate(conn)
        if applied:
            say(f"applied migrations: {', '.join(applied)}")
        if seed:
            base = demo_base_url(settings.server.host, settings.server.port)
            inserted = await seed_demo(conn, base)
            say("demo data inserted" if inserted else "demo data already present")
            if not settings.production:
                host_id = await ensure_host(conn, DEMO_HOST)
                token = issue_token(
                    settings.secret, "host", host_id, settings.security.host_token_ttl_seconds
                )
                say(f"demo host token (development only): {token}")
                await ensure_password(conn, host_id, DEMO_PASSWORD)
                say(
                    f"console sign-in (development only): name {DEMO_HOST!r}, "
                    f"password {DEMO_PASSWORD!r} (unless changed)"
                )
    finally:
        await conn.close()


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    embedded = settings.uses_embedded
    workers = settings.server.workers if args.workers is None else args.workers
    if workers < 1:
        raise CliError("--workers must be at least 1")
    with backends(settings, supervise=True) as ready:
        if workers > 1:
            run(_return_zero(prepare_database(ready, embedded=embedded, seed=args.seed_demo)))
            return run_workers(ready, workers, args.config, say)
        return run(
            _serve(
                ready,
                embedded=embedded,
                migrate_first=not args.no_migrate,
                seed=args.seed_demo,
                reuse_port=args.reuse_port,
            )
        )


async def _serve(
    settings: Settings, *, embedded: bool, migrate_first: bool, seed: bool, reuse_port: bool = False
) -> int:
    if migrate_first or seed:
        await prepare_database(settings, embedded=embedded, seed=seed)
    app = create_app(settings)
    runner = make_runner(app, shutdown_timeout=settings.server.shutdown_grace_seconds)
    await runner.setup()
    gctune.tune()  # after start-up: see livecommerce/gctune.py
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await start_site(
                runner,
                settings.server.host,
                settings.server.port,
                backlog=4096,
                reuse_port=reuse_port,
            )
        except OSError as exc:
            raise CliError(
                f"cannot listen on {settings.server.host}:{settings.server.port}: {exc.strerror}"
            ) from None
        for host, port, *_ in runner.addresses:
            say(f"listening on http://{host}:{port}")
            base = f"http://{host}:{port}"
            say(f"host console: {base}/console   audience: {base}/live   agents: {base}/agent")
        fake_url = app.get(keys.FAKE_WECHAT_URL)
        if fake_url:
            say(f"fake WeChat server (development) on {fake_url}: POST {fake_url}/dev/pay pays")
        await stop.wait()
        say("shutting down: closing sockets, draining requests")
    finally:
        await runner.cleanup()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    embedded = settings.uses_embedded
    with backends(settings) as ready:
        run(_return_zero(prepare_database(ready, embedded=embedded, seed=False)))
    say("schema is up to date")
    return 0


def cmd_seed_demo(args: argparse.Namespace, settings: Settings) -> int:
    embedded = settings.uses_embedded
    with backends(settings) as ready:
        run(_return_zero(prepare_database(ready, embedded=embedded, seed=True)))
    return 0


async def _return_zero(coro: Awaitable[None]) -> int:
    await coro
    return 0


def cmd_host_token(args: argparse.Namespace, settings: Settings) -> int:
    name = args.name.strip()
    if not 1 <= len(name) <= 100:
        raise CliError("host name must be 1..100 characters")
    embedded = settings.uses_embedded
    with backends(settings, share=True) as ready:
        run(_return_zero(prepare_database(ready, embedded=embedded, seed=False)))
        host_id = run(_host_id(ready, name))
    ttl = settings.security.host_token_ttl_seconds
    print(issue_token(settings.secret, "host", host_id, ttl), flush=True)
    return 0


async def _host_id(settings: Settings, name: str) -> int:
    conn = await connect(settings.database.url)
    try:
        return await ensure_host(conn, name)
    finally:
        await conn.close()


def _password_arg(args: argparse.Namespace) -> str:
    if not args.password_stdin:
        return new_password()
    password = sys.stdin.readline().rstrip("\n")
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise CliError(f"password must be {MIN_LENGTH}..{MAX_LENGTH} characters")
    return password


def cmd_host_create(args: argparse.Namespace, settings: Settings) -> int:
    name = args.name.strip()
    if not 1 <= len(name) <= 100:
        raise CliError("host name must be 1..100 characters")
    password = _password_arg(args)
    embedded = settings.uses_embedded
    with backends(settings, share=True) as ready:
        run(_return_zero(prepare_database(ready, embedded=embedded, seed=False)))
        host = run(_with_conn(ready, lambda conn: create_host(conn, name, password)))
    say(f"host {host.name!r} created (id {host.id})")
    print(f"password: {password}" if not args.password_stdin else "password set", flush=True)
    return 0


def cmd_host_reset(args: argparse.Namespace, settings: Settings) -> int:
    name = args.name.strip()  # as `host create`, the admin API and the sign-in form
    password = _password_arg(args)
    with backends(settings, share=True) as ready:
        host = run(_with_conn(ready, lambda conn: set_password(conn, password, name=name)))
    say(f"password of host {host.name!r} (id {host.id}) reset")
    print(f"password: {password}" if not args.password_stdin else "password set", flush=True)
    return 0


async def _with_conn(
    settings: Settings, action: Callable[[asyncpg.Connection], Awaitable[Host]]
) -> Host:
    conn = await connect(settings.database.url)
    try:
        return await action(conn)
    except AppError as exc:
        raise CliError(exc.message) from None
    finally:
        await conn.close()


def cmd_loadtest(args: argparse.Namespace, settings: Settings) -> int:
    from livecommerce.loadtest.command import run_command
    from livecommerce.loadtest.runner import LoadTestError

    try:
        return run_command(args, settings, say)
    except (LoadTestError, RuntimeError) as exc:
        raise CliError(str(exc)) from None
