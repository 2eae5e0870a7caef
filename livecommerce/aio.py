"""Small asyncio helpers that get cancellation right on Python 3.11.

``asyncio.wait_for`` on 3.11 can swallow a cancellation that arrives just as the awaited thing
finishes or times out (fixed in 3.12, gh-86296). In a ``while True`` background loop that means
a task that ignores ``cancel()`` and a shutdown that never ends, so the loops here wait with
``asyncio.timeout`` instead, and every background task is stopped through :func:`stop_task`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Coroutine
from typing import Any

log = logging.getLogger("livecommerce.aio")
# Closes that outlived close_within(): kept referenced until they end (never garbage-collected
# while pending).
_LEFT_BEHIND: set[asyncio.Future[Any]] = set()


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass; True when it was set.

    Raises CancelledError first if a cancel of this task was lost (see :func:`check_cancelled`).
    """
    check_cancelled()
    if seconds <= 0:
        return event.is_set()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
        return True
    return False


def check_cancelled() -> None:
    """Raise CancelledError if this task was asked to stop and the request got lost.

    Call at the top of every background loop. On Python 3.11 a library call can return
    normally after its task was cancelled (seen with redis-py 8.1: about 5 % of cancels that
    land in a command), leaving the task "cancelling" but running — a shutdown that never ends.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


SPIN_SECONDS = 0.0015


async def sleep_until(wall_time: float) -> None:
    """Return once ``time.time() >= wall_time``: never early, and usually within ~0.1 ms.

    Event-loop timers round their wait up to the millisecond (epoll's resolution), so a plain
    ``sleep`` lands up to ~1 ms late; this sleeps to ``SPIN_SECONDS`` short of the deadline and
    yields to the loop (``sleep(0)``) for the rest, which keeps other tasks running.
    """
    remaining = wall_time - time.time()
    if remaining > SPIN_SECONDS:
        await asyncio.sleep(remaining - SPIN_SECONDS)
    while time.time() < wall_time:  # noqa: ASYNC110 - a sub-millisecond spin, not a poll
        await asyncio.sleep(0)


async def close_within(close: Awaitable[Any], seconds: float) -> None:
    """Await ``close`` (e.g. a Redis client's ``aclose()``) for at most ``seconds``, and never
    longer. ``asyncio.wait_for`` is not bounded that way: on its timeout it waits for the
    cancelled awaitable to finish, forever if that swallows the cancellation — seen at shutdown
    with redis-py's ``PubSub.aclose()`` after a cancelled blocking read. Here the close is
    cancelled and left behind instead. Errors of the close are swallowed (logged at debug): the
    connection is being dropped anyway. Raises CancelledError when the caller is cancelled."""
    task = asyncio.ensure_future(close)
    try:
        await asyncio.wait({task}, timeout=seconds)
    finally:
        if not task.done():
            task.cancel()
            _LEFT_BEHIND.add(task)
            task.add_done_callback(_forget)
    if task.done():
        _forget(task)


def _forget(task: asyncio.Future[Any]) -> None:
    _LEFT_BEHIND.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.debug("a close failed: %r", task.exception())


async def stop_task(task: asyncio.Task[None], within: float = 5.0) -> None:
    """Cancel ``task`` and wait for it at most ``within`` seconds (logged if it will not stop)."""
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=within)
    if not done:
        log.error("background task %s did not stop within %ss", task.get_name(), within)
        return
    with contextlib.suppress(asyncio.CancelledError):
        exc = task.exception()
        if exc is not None:
            log.error("background task %s had failed: %r", task.get_name(), exc)


@contextlib.asynccontextmanager
async def running(coro: Coroutine[Any, Any, None], name: str) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``coro`` as a background task for the block's duration, then stop it (bounded)."""
    task = asyncio.create_task(coro, name=name)
    try:
        yield task
    finally:
        await stop_task(task)
