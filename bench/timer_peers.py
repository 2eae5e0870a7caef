"""The peers of the timer-lateness benchmark: arq deferred jobs and Celery ETA tasks.

Both run with their default worker settings in a subprocess of their own
(``python bench/timer_peers.py arq|celery`` with ``TIMER_BENCH_REDIS_URL`` set). Each job/task
reads the wall clock first thing when it starts and appends ``{"key", "due_ms", "start_ms",
"pid"}`` to the Redis list ``RESULTS_KEY`` on the same Redis database as its broker; the
benchmark reads that list afterwards (lateness = start_ms - due_ms; the same key twice is a
duplicate).

The enqueue side runs the same way: ``python bench/timer_peers.py enqueue arq|celery`` reads
``[[key, due_ms], ...]`` as JSON on standard input. All of it runs on the interpreter of
``.venv-peers`` (made by ``timer_lateness.py`` from ``bench/requirements-peers.txt``): arq pins
redis-py below 6, which must not leak into the project's own environment.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

import orjson

RESULTS_KEY = "timer_bench:started"
URL_ENV = "TIMER_BENCH_REDIS_URL"
CELERY_TASK = "timer_bench.job"


def _record(due_ms: int, key: str) -> bytes:
    return orjson.dumps(
        {"key": key, "due_ms": due_ms, "start_ms": time.time() * 1000, "pid": os.getpid()}
    )


# ---------------------------------------------------------------------------------------- arq


async def arq_job(ctx: dict[str, Any], due_ms: int, key: str) -> None:
    """The arq job: note when it started (before any await)."""
    record = _record(due_ms, key)
    await ctx["redis"].rpush(RESULTS_KEY, record)


def arq_worker_settings(url: str) -> type:
    from arq.connections import RedisSettings

    class WorkerSettings:
        # Everything else is arq's default (poll_delay 0.5 s, max_jobs 10, ...).
        functions = [arq_job]  # noqa: RUF012 (arq reads a class attribute)
        redis_settings = RedisSettings.from_dsn(url)

    return WorkerSettings


def run_arq_worker(url: str) -> None:
    from arq.worker import run_worker

    run_worker(arq_worker_settings(url))


async def enqueue_arq(url: str, jobs: list[tuple[str, int]]) -> None:
    """Enqueue one deferred job per ``(key, due_ms)`` (job id = key, so arq dedups by it)."""
    from arq import create_pool
    from arq.connections import RedisSettings

    pool = await create_pool(RedisSettings.from_dsn(url))
    try:
        for key, due_ms in jobs:
            await pool.enqueue_job(
                "arq_job",
                due_ms,
                key,
                _job_id=key,
                _defer_until=datetime.fromtimestamp(due_ms / 1000, UTC),
            )
    finally:
        await pool.aclose()


# ------------------------------------------------------------------------------------- celery

_sync_redis: Any = None


def celery_app(url: str) -> Any:
    """A Celery app on the Redis broker ``url`` with default settings and the one task."""
    from celery import Celery

    app = Celery("timer_bench", broker=url)

    @app.task(name=CELERY_TASK)  # type: ignore[untyped-decorator]
    def job(due_ms: int, key: str) -> None:
        global _sync_redis
        record = _record(due_ms, key)
        if _sync_redis is None:  # one client per worker (prefork child) process
            import redis

            _sync_redis = redis.Redis.from_url(url)
        _sync_redis.rpush(RESULTS_KEY, record)

    return app


def run_celery_worker(url: str) -> None:
    # Default concurrency (one prefork child per CPU), default prefetch; only quieter logs.
    celery_app(url).worker_main(["worker", "--loglevel=WARNING"])


def enqueue_celery(url: str, jobs: list[tuple[str, int]]) -> None:
    """Send one ETA task per ``(key, due_ms)`` (task id = key)."""
    app = celery_app(url)
    task = app.tasks[CELERY_TASK]
    with app.producer_or_acquire() as producer:
        for key, due_ms in jobs:
            task.apply_async(
                (due_ms, key),
                eta=datetime.fromtimestamp(due_ms / 1000, UTC),
                task_id=key,
                producer=producer,
            )


def main(argv: list[str]) -> int:
    url = os.environ[URL_ENV]
    if argv == ["arq"]:
        run_arq_worker(url)
    elif argv == ["celery"]:
        run_celery_worker(url)
    elif argv in (["enqueue", "arq"], ["enqueue", "celery"]):
        jobs = [(str(k), int(d)) for k, d in orjson.loads(sys.stdin.buffer.read())]
        if argv[1] == "arq":
            import asyncio

            asyncio.run(enqueue_arq(url, jobs))
        else:
            enqueue_celery(url, jobs)
    else:
        print(
            "usage: timer_peers.py [enqueue] arq|celery  (TIMER_BENCH_REDIS_URL)", file=sys.stderr
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
