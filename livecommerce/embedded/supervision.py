"""The watchdog's policy and bookkeeping: intervals, restart backoff, what it knows of a server.

Supervision (``supervise=True``, what ``livecommerce serve`` asks for): a watchdog thread
(:class:`~livecommerce.embedded.backends.EmbeddedBackends`) checks both servers every
:data:`WATCH_INTERVAL_SECONDS` and restarts one that died (a crash, the OOM killer, ``kill -9``)
on the same port and data, so the app — which answers 503 while a backend is down and recovers
on its own — needs no restart. The restart comes :data:`RESTART_DELAY_SECONDS` after the death,
doubling up to :data:`RESTART_DELAY_MAX_SECONDS` while the server keeps dying (within
:data:`STABLE_SECONDS` of its restart). One log line per death and per restart (logger
``livecommerce.embedded``, no traceback). A server stopped on purpose
(:meth:`EmbeddedBackends.stop`, or the fault helpers ``stop_postgres``/``kill_valkey``) is never
restarted. A PostgreSQL that crashed leaves its ``postmaster.pid`` and perhaps children behind:
the restart clears them first (:mod:`livecommerce.embedded.leftovers`).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

from livecommerce.embedded.processes import tail

WATCH_INTERVAL_SECONDS = 0.25  # how often the watchdog checks that the servers still run
RESTART_DELAY_SECONDS = 1.0  # wait after a death before the restart; doubles while it keeps dying
RESTART_DELAY_MAX_SECONDS = 30.0
STABLE_SECONDS = 60.0  # up this long after a restart: the next death waits RESTART_DELAY_SECONDS

POSTGRES, VALKEY = "postgres", "valkey"


@dataclass(slots=True)
class Watch:
    """What the watchdog knows of one server."""

    label: str  # "PostgreSQL" or "Valkey", for the log
    wanted: bool = True  # False while stopped on purpose: never restarted then
    started_at: float = 0.0  # monotonic seconds of its last start
    delay: float = RESTART_DELAY_SECONDS  # seconds to wait before the next restart
    dead_pid: int | None = None  # set while it is dead and not yet restarted
    down_since: float | None = None
    next_try: float = 0.0

    def reset(self, now: float) -> None:
        """Just started on purpose: running, wanted, no backoff."""
        self.wanted, self.started_at, self.delay = True, now, RESTART_DELAY_SECONDS
        self.dead_pid = self.down_since = None


def exit_reason(code: int, log_path: Path) -> str:
    """``killed by SIGKILL``, or ``exited with status 1 (<last line of its log>)``."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code} ({tail(log_path)})"


def seconds(value: float) -> str:
    """``1 s``, ``0.5 s``: a delay for the log."""
    return f"{value:g} s"
