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
