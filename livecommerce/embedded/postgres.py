"""The pieces of running the embedded PostgreSQL: its service user, ``initdb``, its command line,
its readiness, and a postmaster orphaned by a crashed run.

PostgreSQL refuses to run as root, so under root it runs as a system user ``livecommerce``
(created with ``useradd`` if missing, else ``nobody``); the data dir is handed to that user and
the directories above it get the search bit (``o+x``) so it can reach its files.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from livecommerce.embedded.errors import EmbeddedError

DATABASE_NAME = "livecommerce"
PG_SUPERUSER = "postgres"
SERVICE_USER = "livecommerce"


def service_user() -> pwd.struct_passwd | None:
    """The unprivileged user PostgreSQL runs as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        pass
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
        check=False,
        capture_output=True,
    )
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return pwd.getpwnam("nobody")


def make_reachable(path: Path) -> None:
    """Give every directory above ``path`` the search bit so the service user can reach it."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def initdb(
    bin_dir: Path,
    pgdata: Path,
    password: str,
    user: pwd.struct_passwd | None,
    *,
    tmp_dir: Path,
    log: Callable[[str], None],
) -> None:
    """Create the cluster in ``pgdata`` (superuser :data:`PG_SUPERUSER` with ``password``,
    scram-sha-256, UTF8, locale C), as ``user`` when given; the password file lives in
    ``tmp_dir`` only while initdb runs.

    Raises:
        EmbeddedError: initdb failed (its last line of stderr).
    """
    pgdata.mkdir(mode=0o700, exist_ok=True)
    fd, pwfile = tempfile.mkstemp(dir=tmp_dir, prefix=".pw")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        if user is not None:
            os.chown(pgdata, user.pw_uid, user.pw_gid)
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        log(f"initialising embedded PostgreSQL in {pgdata}")
        result = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                PG_SUPERUSER,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--encoding=UTF8",
                "--locale=C",
            ],
            capture_output=True,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            check=False,
        )
    finally:
        os.unlink(pwfile)
    if result.returncode != 0:
        err = result.stderr.decode(errors="replace").strip().splitlines()
        raise EmbeddedError(f"initdb failed: {err[-1] if err else result.returncode}")


def postgres_args(bin_dir: Path, pgdata: Path, port: int, *, fsync: bool) -> list[str]:
    """The ``postgres`` command line: 127.0.0.1:``port`` only, no Unix socket, 300 connections;
    ``fsync=False`` also turns off synchronous commit and full page writes."""
    return [
        str(bin_dir / "postgres"),
        "-D", str(pgdata),
        "-c", "listen_addresses=127.0.0.1",
        "-c", f"port={port}",
        "-c", "unix_socket_directories=",
        "-c", "max_connections=300",
        "-c", f"fsync={'on' if fsync else 'off'}",
        "-c", f"synchronous_commit={'on' if fsync else 'off'}",
        "-c", f"full_page_writes={'on' if fsync else 'off'}",
    ]  # fmt: skip


def stop_orphan_postmaster(pgdata: Path, log: Callable[[str], None]) -> None:
    """A postmaster left by a crashed run (we hold the lock, so nobody owns it): stop it."""
    pidfile = pgdata / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().splitlines()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return
    if str(pgdata).encode() not in cmdline:
        return
    log(f"stopping orphaned embedded PostgreSQL pid {pid}")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.1)


def wait_postgres_ready(
    proc: subprocess.Popen[bytes], pgdata: Path, timeout: float, closing: threading.Event
) -> bool:
    """Whether the postmaster ``proc`` reports ``ready`` in its ``postmaster.pid`` within
    ``timeout`` seconds; False at once when it exits or ``closing`` is set."""
    deadline = time.monotonic() + timeout
    pidfile = pgdata / "postmaster.pid"
    while time.monotonic() < deadline and not closing.is_set():
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError, IndexError):
            lines = pidfile.read_text().splitlines()
            if int(lines[0]) == proc.pid and lines[7].strip() == "ready":
                return True
        time.sleep(0.05)
    return False
