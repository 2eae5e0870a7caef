"""Backend outages: which backend an exception says is unreachable, and one log line per outage.

:func:`unavailable_backend` decides by exception *class and origin*, never by message text:

* ``"postgres"`` — asyncpg's connection-class errors (SQLSTATE 08, ``ConnectionDoesNotExistError``),
  the server refusing or dropping sessions because it is shutting down or starting
  (``AdminShutdownError`` 57P01, ``CrashShutdownError`` 57P02, ``CannotConnectNowError`` 57P03),
  and any ``OSError``/``TimeoutError`` raised from inside asyncpg (connection refused, reset,
  ``command_timeout``);
* ``"redis"`` — redis-py's ``ConnectionError`` (which includes ``BusyLoadingError``) and
  ``TimeoutError``, and any ``OSError`` raised from inside redis-py;
* ``None`` — anything else. An ``OSError`` raised by aiohttp while reading the request or writing
  the response is the *client's* connection, not a backend.

:class:`OutageLog` turns the stream of failures into two lines per outage: a warning when the
first request fails (``postgres unavailable: ConnectionRefusedError(...)``), and — once a probe of
the backend succeeds again — ``postgres available again after 3.2 s (41 requests answered 503)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType

import asyncpg
from redis import exceptions as redis_exc

log = logging.getLogger("livecommerce.outage")

POSTGRES, REDIS = "postgres", "redis"
NAMES = {POSTGRES: "PostgreSQL", REDIS: "Redis"}
PROBE_SECONDS = 0.25  # how often a backend that is down is probed to notice its return

_PG_DOWN: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)
_REDIS_DOWN: tuple[type[BaseException], ...] = (
    redis_exc.ConnectionError,
    redis_exc.TimeoutError,
)
_ORIGINS = (("asyncpg", POSTGRES), ("redis", REDIS))
# asyncpg errors that mean "this connection is unusable" — when the server dropped it, or on a
# programming error. Which of the two is decided by probing PostgreSQL (:meth:`OutageLog.confirm`).
_PG_SUSPECT: tuple[type[BaseException], ...] = (asyncpg.InterfaceError, asyncpg.InternalClientError)
# What a call to PostgreSQL or Redis may raise when that backend is down or slow (a socket's
# join or message catches these; :func:`unavailable_backend` then says which backend it was).
BACKEND_ERRORS = (redis_exc.RedisError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def unavailable_backend(exc: BaseException) -> str | None:
    """``"postgres"`` or ``"redis"`` when ``exc`` means that backend cannot be reached, else None.

    For an exception group (``TaskGroup``), the first member that names a backend decides. An
    error raised while handling a backend failure (asyncpg's ``InternalClientError`` when it
    resets a connection the server just dropped) is that backend's, through ``__context__``.
    """
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        found = _direct(current)
        if found is not None:
            return found
        current = current.__cause__ or current.__context__
        seen += 1
    return None


def suspected_backend(exc: BaseException) -> str | None:
    """``"postgres"`` when ``exc`` (or what it was raised while handling) is an asyncpg error that
    a dropped connection also causes: only a probe can tell an outage from a bug."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        if isinstance(current, _PG_SUSPECT):
            return POSTGRES
        current = current.__cause__ or current.__context__
        seen += 1
    return None


def _direct(exc: BaseException) -> str | None:
    if isinstance(exc, BaseExceptionGroup):
        for member in exc.exceptions:
            found = _direct(member)
            if found is not None:
                return found
        return None
    if isinstance(exc, _PG_DOWN):
        return POSTGRES
    if isinstance(exc, _REDIS_DOWN):
        return REDIS
    if isinstance(exc, OSError):  # includes TimeoutError and ConnectionError
        return _origin(exc.__traceback__)
    return None


def _origin(tb: TracebackType | None) -> str | None:
    """The backend library the innermost frame of ``tb`` belonging to one was in."""
    found: str | None = None
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        for prefix, backend in _ORIGINS:
            if module == prefix or module.startswith(prefix + "."):
                found = backend
        tb = tb.tb_next
    return found


class OneLineFilter(logging.Filter):
    """Keeps a record but replaces its traceback by ``(ExceptionClass: message)`` on one line.

    Installed on ``asyncpg.pool``, whose background reconnect logs "Failed to restore the pool
    connection floor; retrying" with a full traceback at each retry while PostgreSQL is down.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.msg} ({record.exc_info[1]!r})"
            record.exc_info = None
            record.exc_text = None
        return True


_ONE_LINE = OneLineFilter()


def quiet_library_logs() -> None:
    """Install :class:`OneLineFilter` on the libraries' loggers (idempotent)."""
    logger = logging.getLogger("asyncpg.pool")
    if _ONE_LINE not in logger.filters:
        logger.addFilter(_ONE_LINE)


Probe = Callable[[], Awaitable[object]]


class OutageLog:
    """Per-backend outage state of this process: logs each outage once, and its end.

    ``failed(backend, exc)`` is called for every request that failed because of ``backend``; the
    first call of an outage logs a warning and starts a probe task that retries ``probes[backend]``
    every :data:`PROBE_SECONDS` until it succeeds, then logs the recovery. Request handling never
    waits for a probe.
    """

    def __init__(self, probes: dict[str, Probe]) -> None:
        self.probes = probes
        self.down_since: dict[str, float] = {}
        self.failures: dict[str, int] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def is_down(self, backend: str) -> bool:
        return backend in self.down_since

    async def confirm(self, backend: str) -> bool:
        """True when ``backend`` is down: known so, or its probe fails now (at most 1 s)."""
        if backend in self.down_since:
            return True
        probe = self.probes.get(backend)
        if probe is None:
            return False
        try:
            await asyncio.wait_for(probe(), 1.0)
        except Exception:  # the probe failing is the answer
            return True
        return False

    def failed(self, backend: str, exc: BaseException) -> None:
        """A request failed because ``backend`` is unreachable (``exc`` says how)."""
        if backend in self.down_since:
            self.failures[backend] += 1
            return
        self.down_since[backend] = time.monotonic()
        self.failures[backend] = 1
        log.warning("%s unavailable: %r; answering 503 until it is back", backend, exc)
        probe = self.probes.get(backend)
        if probe is not None:
            self._tasks[backend] = asyncio.get_running_loop().create_task(
                self._watch(backend, probe), name=f"outage-probe-{backend}"
            )

    def recovered(self, backend: str) -> None:
        """``backend`` answered again: log the outage's end (no-op when it was not down)."""
        since = self.down_since.pop(backend, None)
        if since is None:
            return
        count = self.failures.pop(backend, 0)
        log.warning(
            "%s available again after %.1f s (%d requests answered 503)",
            backend,
            time.monotonic() - since,
            count,
        )

    async def _watch(self, backend: str, probe: Probe) -> None:
        while backend in self.down_since:
            await asyncio.sleep(PROBE_SECONDS)
            try:
                await asyncio.wait_for(probe(), PROBE_SECONDS * 8)
            except Exception:  # still down (any failure of the probe means "not yet")
                continue
            self.recovered(backend)
        self._tasks.pop(backend, None)

    async def close(self) -> None:
        """Stop the probe tasks (app shutdown)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
