"""The embedded backends' data dir: its lock, generated passwords and the running URLs.

Layout of the data dir (default ``.livecommerce/``)::

    .lock          flock held while a process uses the dir (a second user gets a clear error)
    secrets.json   generated passwords for PostgreSQL and Valkey (mode 0600)
    running.json   the URLs, while the backends run (mode 0600; see RUNNING_FILE)
    postgres/      PGDATA (kept across runs)
    valkey/        valkey.conf, appendonly/ (the append-only file) and dump.rdb, kept across runs
    *.log          server logs
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from livecommerce.embedded.errors import EmbeddedError


@dataclass(frozen=True, slots=True)
class EmbeddedUrls:
    database_url: str
    redis_url: str


# Written (mode 0600) while the backends run, removed on stop: the URLs another command run
# against the same data dir connects to instead of starting its own servers.
RUNNING_FILE = "running.json"


def running_urls(data_dir: str | Path) -> EmbeddedUrls | None:
    """The URLs of the embedded backends another process is running in ``data_dir``, or None
    when none runs there (the data dir's lock is free or no URLs were recorded)."""
    root = Path(data_dir).resolve()
    try:
        with (root / ".lock").open("a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                data = json.loads((root / RUNNING_FILE).read_text())
                return EmbeddedUrls(data["database_url"], data["redis_url"])
            fcntl.flock(f, fcntl.LOCK_UN)
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_running(data_dir: Path, urls: EmbeddedUrls) -> None:
    """Record the URLs for commands run while we serve (``livecommerce host create``)."""
    path = data_dir / RUNNING_FILE
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"database_url": urls.database_url, "redis_url": urls.redis_url}, f)


def acquire_lock(data_dir: Path) -> IO[str]:
    """Take the data dir's lock (``.lock``, which then holds our pid); the open file holds it
    until closed.

    Raises:
        EmbeddedError: another process holds it (the message names its pid).
    """
    f = (data_dir / ".lock").open("a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "?"
        f.close()
        raise EmbeddedError(
            f"data dir {data_dir} is in use by another livecommerce process (pid {holder})"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def credentials(data_dir: Path) -> dict[str, str]:
    """The passwords ``{"postgres": ..., "valkey": ...}`` from ``secrets.json``, generated (and
    written with mode 0600) on first use."""
    path = data_dir / "secrets.json"
    if path.exists():
        data: dict[str, str] = json.loads(path.read_text())
        return data
    data = {"postgres": secrets.token_urlsafe(24), "valkey": secrets.token_urlsafe(24)}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    return data
