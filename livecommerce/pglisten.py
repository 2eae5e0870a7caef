"""A PostgreSQL LISTEN that survives lost connections (asyncpg ``add_listener``).

:class:`Listener` holds one dedicated connection LISTENing on a channel and calls ``on_notify``
for each notification. The connection is watched (asyncpg's termination callback, plus a
``SELECT 1`` every ``ping_seconds`` for a peer that vanished without closing); when it is lost
the listener reconnects after ``retry_seconds`` and calls ``on_notify`` once on each
(re)connection, since notifications sent while nobody listened are gone. It is a wake-up only:
its users still poll on a cap, so a down LISTEN delays work, it never loses it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg

from livecommerce.aio import check_cancelled, wait_event

log = logging.getLogger("livecommerce.pglisten")
_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


class Listener:
    def __init__(
        self,
        url: str,
        channel: str,
        on_notify: Callable[[], None],
        *,
        ping_seconds: float = 30.0,
        retry_seconds: float = 1.0,
    ) -> None:
        self._url = url
        self._channel = channel
        self._on_notify = on_notify
        self._ping = ping_seconds
        self._retry = retry_seconds
        self.connected = asyncio.Event()  # set while LISTENing (tests wait on it)
        self.connections = 0  # how many times it (re)connected
        self.pid: int | None = None  # the backend pid of the current connection

    def _notified(self, *_: object) -> None:
        self._on_notify()

    async def run(self) -> None:
        failing = False
        while True:
            check_cancelled()
            try:
                conn: asyncpg.Connection = await asyncpg.connect(self._url, timeout=10)
            except _ERRORS as exc:
                if not failing:
                    log.warning("LISTEN %s: cannot connect (%s); polling meanwhile",
                                self._channel, type(exc).__name__)  # fmt: skip
                failing = True
                await asyncio.sleep(self._retry)
                continue
            failing = False
            try:
                await self._hold(conn)
            except _ERRORS as exc:
                log.warning("LISTEN %s: connection lost (%s); reconnecting",
                            self._channel, type(exc).__name__)  # fmt: skip
            finally:
                self.connected.clear()
                self.pid = None
                conn.terminate()
            await asyncio.sleep(self._retry)

    async def _hold(self, conn: asyncpg.Connection) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        await conn.add_listener(self._channel, self._notified)
        self.pid = conn.get_server_pid()
        self.connections += 1
        self.connected.set()
        self._on_notify()  # whatever was notified while nobody listened
        while not await wait_event(lost, self._ping):
            await asyncio.wait_for(conn.execute("SELECT 1"), self._ping)
        raise ConnectionError("terminated")
