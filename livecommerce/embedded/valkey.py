"""One embedded Valkey (Redis-compatible) process: :class:`EmbeddedValkey`.

Valkey runs with append-only persistence (``appendonly yes``, ``appendfsync everysec``): a crash
or ``kill -9`` loses at most about the last second of writes, a clean stop loses nothing. What
Redis holds is rebuildable anyway (README "Reliability"); the AOF keeps a restart from turning
into a resync of every room. ``fsync=False`` (the tests) writes the AOF without fsync. It
listens on 127.0.0.1 only, with password auth.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from livecommerce.embedded.errors import EmbeddedError
from livecommerce.embedded.processes import (
    free_port,
    pdeathsig,
    stop_process,
    tail,
    valkey_server_bin,
)


class EmbeddedValkey:
    """One Valkey process on 127.0.0.1 with its data in ``data_dir`` (append-only file and RDB).

    Restartable on the same port (:meth:`kill` then :meth:`start`), which the fault tests use to
    restart Redis empty, with its data, or from a copy of an older data dir.
    """

    def __init__(
        self,
        data_dir: Path,
        password: str,
        *,
        server_bin: Path | None = None,
        fsync: bool = True,
        start_timeout: float = 60.0,
        log_path: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.password = password
        self.server_bin = server_bin or valkey_server_bin()
        self.fsync = fsync
        self.start_timeout = start_timeout
        self.log_path = log_path or data_dir.parent / f"{data_dir.name}.log"
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def url(self) -> str:
        if self.port is None:
            raise EmbeddedError("embedded Valkey is not started")
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def config(self, port: int) -> str:
        """valkey.conf: loopback only, password, AOF (fsync every second, or never with
        ``fsync=False``) plus RDB snapshots."""
        return (
            f"bind 127.0.0.1\nport {port}\nrequirepass {self.password}\n"
            f"dir {self.data_dir}\ndbfilename dump.rdb\nsave 60 1000\n"
            "appendonly yes\nappenddirname appendonly\n"
            f"appendfsync {'everysec' if self.fsync else 'no'}\n"
            "daemonize no\nprotected-mode yes\nmaxclients 10000\n"
        )

    def start(self, port: int | None = None) -> int:
        """Start on ``port`` (default: the previous one, else a free one); returns the port.

        Raises:
            EmbeddedError: it did not answer PING within ``start_timeout`` (3 tries on fresh
                ports when none was fixed).
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fixed = port or self.port
        last_error = ""
        for _attempt in range(1 if fixed else 3):
            use = fixed or free_port()
            conf = self.data_dir / "valkey.conf"
            fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(self.config(use))
            with self.log_path.open("ab") as log:
                proc = subprocess.Popen(
                    [str(self.server_bin), str(conf)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                    preexec_fn=pdeathsig(signal.SIGTERM),
                )
            self.proc = proc
            if self._wait_ready(proc, use):
                self.port = use
                return use
            last_error = tail(self.log_path)
            stop_process(proc, signal.SIGTERM, 10.0)
            self.proc = None
        raise EmbeddedError(f"embedded Valkey did not start: {last_error}")

    def stop(self) -> None:
        """Clean stop (SIGTERM: the AOF is flushed); safe to call twice."""
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, 15.0)
            self.proc = None

    def kill(self) -> None:
        """``kill -9``: whatever was not yet written to the AOF is lost."""
        if self.proc is not None:
            stop_process(self.proc, signal.SIGKILL, 5.0)
            self.proc = None

    def _wait_ready(self, proc: subprocess.Popen[bytes], port: int) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), 1) as s,
            ):
                s.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                s.settimeout(2)
                reply = b""
                while b"PONG" not in reply and b"LOADING" not in reply:
                    chunk = s.recv(256)
                    if not chunk:
                        break
                    reply += chunk
                if b"+PONG" in reply:
                    return True
            time.sleep(0.05)
        return False
