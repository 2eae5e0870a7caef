"""The asyncio helpers: a precise wall-clock sleep that is never early."""

from __future__ import annotations

import asyncio
import time

from livecommerce.aio import sleep_until


async def test_sleep_until_never_returns_early() -> None:
    """Deadlines below, around and above the spin threshold, and one in the past."""
    for delay in (-0.01, 0.0, 0.0003, 0.001, 0.002, 0.0137, 0.05):
        deadline = time.time() + delay
        await sleep_until(deadline)
        assert time.time() >= deadline


async def test_sleep_until_lets_other_tasks_run() -> None:
    """The final spin yields to the loop: a task scheduled meanwhile makes progress."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await sleep_until(time.time() + 0.001)
    task.cancel()
    assert ticks > 0


async def test_close_within_is_bounded_even_when_the_close_swallows_cancellation() -> None:
    """asyncio.wait_for would hang here: on timeout it waits for the cancelled close to end."""
    from livecommerce.aio import close_within

    release = asyncio.Event()

    async def stubborn_close() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # swallowed, as redis-py's PubSub.aclose() can after a blocked read

    started = time.monotonic()
    await close_within(stubborn_close(), 0.2)
    assert time.monotonic() - started < 2.0
    release.set()  # let the left-behind close end
    await asyncio.sleep(0.05)


async def test_close_within_waits_for_a_close_that_ends() -> None:
    from livecommerce.aio import close_within

    closed: list[bool] = []

    async def close() -> None:
        await asyncio.sleep(0.01)
        closed.append(True)

    await close_within(close(), 1.0)
    assert closed == [True]
