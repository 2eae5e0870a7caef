"""The embedded backends' orchestration: :class:`EmbeddedBackends` starts, hands out URLs for,
supervises and stops a private PostgreSQL and Valkey in one data dir.

It owns the processes: it starts them as direct children in their own session (a terminal's
Ctrl-C reaches the server first, which drains and then stops them in order), asks the kernel to
signal them if this process dies (``PR_SET_PDEATHSIG``: no orphans even after ``kill -9``), and
stops them on :meth:`EmbeddedBackends.stop`. Both listen on 127.0.0.1 only, on free ports picked
at each start, with password auth. The watchdog (``supervise=True``) follows the policy of
:mod:`livecommerce.embedded.supervision`.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from livecommerce.embedded.datadir import (
    RUNNING_FILE,
    EmbeddedUrls,
    acquire_lock,
    credentials,
    write_running,
)
from livecommerce.embedded.errors import EmbeddedError
from livecommerce.embedded.leftovers import clear_after_death
from livecommerce.embedded.postgres import (
    DATABASE_NAME,
    PG_SUPERUSER,
    initdb,
    make_reachable,
    postgres_args,
    service_user,
    stop_orphan_postmaster,
    wait_postgres_ready,
)
from livecommerce.embedded.processes import (
    free_port,
    pdeathsig,
    postgres_bin_dir,
    stop_process,
    tail,
    valkey_server_bin,
)
from livecommerce.embedded.supervision import (
    POSTGRES,
    RESTART_DELAY_MAX_SECONDS,
    RESTART_DELAY_SECONDS,
    STABLE_SECONDS,
    VALKEY,
    WATCH_INTERVAL_SECONDS,
    Watch,
    exit_reason,
    seconds,
)
from livecommerce.embedded.valkey import EmbeddedValkey

# The package's one logger (README, the tests' caplog): not this module's __name__.
log = logging.getLogger("livecommerce.embedded")


class EmbeddedBackends:
    """Start, hand out URLs for, and stop a private PostgreSQL and Valkey in ``data_dir``."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        start_timeout: float = 60.0,
        fsync: bool = True,
        log: Callable[[str], None] | None = None,
        supervise: bool = False,
    ) -> None:
        """``start_timeout``: seconds each server gets to answer after its start. ``log``: where
        start-up lines go (none by default). ``supervise``: restart a server that dies while the
        backends run (see :mod:`livecommerce.embedded.supervision`); off by default, so that the
        tests' fixtures stop and kill servers without a watchdog undoing it."""
        self.data_dir = Path(data_dir).resolve()
        self.start_timeout = start_timeout
        self.fsync = fsync
        self.supervise = supervise
        self._log = log or (lambda _msg: None)
        self._lock_file: IO[str] | None = None
        self._pg: subprocess.Popen[bytes] | None = None
        self._valkey: EmbeddedValkey | None = None
        self._ports: dict[str, int] = {}  # kept so that a restarted PostgreSQL answers at its URL
        self._urls: EmbeddedUrls | None = None
        # Every start, stop and restart of a server holds this lock (the watchdog's included).
        self._lock = threading.RLock()
        self._closing = threading.Event()  # set by stop(): no more restarts, give up a start
        self._watchdog: threading.Thread | None = None
        self._watchdog_end = threading.Event()
        self._watch = {POSTGRES: Watch("PostgreSQL"), VALKEY: Watch("Valkey")}

    @property
    def urls(self) -> EmbeddedUrls:
        if self._urls is None:
            raise EmbeddedError("embedded backends are not started")
        return self._urls

    def __enter__(self) -> EmbeddedUrls:
        self.start()
        return self.urls

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> EmbeddedUrls:
        """Start PostgreSQL, then Valkey (and the watchdog when supervising); returns the URLs.

        Raises:
            EmbeddedError: a package is missing, the data dir is in use, or a server did not
                start within ``start_timeout`` seconds (whatever had started is stopped).
        """
        pg_bin = postgres_bin_dir()
        valkey_bin = valkey_server_bin()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._closing.clear()
        self._lock_file = acquire_lock(self.data_dir)
        try:
            creds = credentials(self.data_dir)
            pg_port = self._start_postgres(pg_bin, creds["postgres"])
            redis_port = self._start_valkey(valkey_bin, creds["valkey"])
        except BaseException:
            self.stop()
            raise
        self._urls = EmbeddedUrls(
            database_url=(
                f"postgresql://{PG_SUPERUSER}:{creds['postgres']}@127.0.0.1:{pg_port}/{DATABASE_NAME}"
            ),
            redis_url=f"redis://:{creds['valkey']}@127.0.0.1:{redis_port}/0",
        )
        write_running(self.data_dir, self._urls)
        now = time.monotonic()
        for watch in self._watch.values():
            watch.reset(now)
        if self.supervise:
            self._start_watchdog()
        return self._urls

    def stop(self) -> None:
        """Stop both servers (fast shutdown) and release the data dir; safe to call twice.

        The watchdog restarts nothing from here on; a restart it has under way is given up. It
        ends only after the servers are down: a server it restarted gets PR_SET_PDEATHSIG from
        the watchdog's thread, and must be stopped in order rather than by that signal.
        """
        self._closing.set()
        with self._lock:
            for watch in self._watch.values():
                watch.wanted = False
            if self._valkey is not None:
                self._valkey.stop()
                self._valkey = None
            if self._pg is not None:
                stop_process(self._pg, signal.SIGINT, 30.0)
                self._pg = None
        self._stop_watchdog()
        if self._lock_file is not None:
            (self.data_dir / RUNNING_FILE).unlink(missing_ok=True)
            self._lock_file.close()
            self._lock_file = None
        self._urls = None
        self._ports.clear()

    # ------------------------------------------------------------------ faults (tests, chaos)

    def stop_postgres(self) -> None:
        """Stop PostgreSQL only (fast shutdown: sessions get 57P01); :meth:`start_postgres`
        brings it back on the same port. The watchdog leaves it stopped."""
        with self._lock:
            self._watch[POSTGRES].wanted = False
            if self._pg is not None:
                stop_process(self._pg, signal.SIGINT, 30.0)
                self._pg = None

    def start_postgres(self) -> None:
        """Start PostgreSQL again after :meth:`stop_postgres` (or a death the watchdog has not
        handled yet), on the port of its URL; returns once it accepts connections.

        Raises:
            EmbeddedError: it did not start within ``start_timeout`` seconds (3 tries).
        """
        with self._lock:
            watch = self._watch[POSTGRES]
            watch.wanted = True
            if self._pg is not None and self._pg.poll() is None:
                return
            dead_pid = self._pg.pid if self._pg is not None else watch.dead_pid
            self._pg = None
            self._restart_postgres(dead_pid, announce=True)
            watch.reset(time.monotonic())

    def kill_valkey(self) -> None:
        """SIGKILL Valkey (a crash: what the AOF had not written is lost); :meth:`start_valkey`
        restarts it. The watchdog leaves it down."""
        with self._lock:
            self._watch[VALKEY].wanted = False
            if self._valkey is not None:
                self._valkey.kill()

    def start_valkey(self) -> None:
        """Start Valkey again after :meth:`kill_valkey` (or a death the watchdog has not
        handled yet), on the port of its URL; returns once it answers PING.

        Raises:
            EmbeddedError: it did not answer within ``start_timeout`` seconds.
        """
        with self._lock:
            watch = self._watch[VALKEY]
            watch.wanted = True
            if self._valkey is None:
                return
            if self._valkey.proc is not None and self._valkey.proc.poll() is None:
                return
            self._valkey.proc = None
            self._valkey.start()
            watch.reset(time.monotonic())

    @property
    def pids(self) -> list[int]:
        """PIDs of the running servers (PostgreSQL's postmaster, then Valkey)."""
        procs = (self._pg, self._valkey.proc if self._valkey is not None else None)
        return [p.pid for p in procs if p is not None and p.poll() is None]

    # ------------------------------------------------------------------ supervision

    def _start_watchdog(self) -> None:
        self._watchdog_end.clear()
        self._watchdog = threading.Thread(
            target=self._watchdog_loop, name="embedded-watchdog", daemon=True
        )
        self._watchdog.start()

    def _stop_watchdog(self) -> None:
        self._watchdog_end.set()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join()
        self._watchdog = None

    def _watchdog_loop(self) -> None:
        """Every :data:`WATCH_INTERVAL_SECONDS`: restart a server that died, when it is due.

        The thread lives until :meth:`stop` has stopped the servers (see there); an unexpected
        error is logged in one line and the watch goes on.
        """
        while not self._watchdog_end.wait(WATCH_INTERVAL_SECONDS):
            with self._lock:
                if self._closing.is_set():
                    continue
                for name in (POSTGRES, VALKEY):
                    try:
                        self._supervise(name)
                    except Exception as exc:  # keep watching: a bug here must not end it
                        log.error("embedded %s watchdog: %r", self._watch[name].label, exc)

    def _supervise(self, name: str) -> None:
        """Notice the death of server ``name`` and restart it once its delay has passed."""
        watch = self._watch[name]
        if not watch.wanted:
            return
        now = time.monotonic()
        proc = self._pg if name == POSTGRES else self._valkey.proc if self._valkey else None
        if proc is not None:
            code = proc.poll()
            if code is None:
                if now - watch.started_at >= STABLE_SECONDS:
                    watch.delay = RESTART_DELAY_SECONDS
                return
            if name == POSTGRES:
                self._pg = None
            elif self._valkey is not None:
                self._valkey.proc = None
            watch.dead_pid, watch.down_since = proc.pid, now
            watch.next_try = now + watch.delay
            log_path = self.data_dir / ("postgres.log" if name == POSTGRES else "valkey.log")
            log.warning(
                "embedded %s (pid %d) died: %s; restarting it in %s",
                watch.label, proc.pid, exit_reason(code, log_path), seconds(watch.delay),
            )  # fmt: skip
            watch.delay = min(watch.delay * 2, RESTART_DELAY_MAX_SECONDS)
        if watch.down_since is None or now < watch.next_try:
            return
        try:
            if name == POSTGRES:
                port = self._restart_postgres(watch.dead_pid, announce=False)
            else:
                assert self._valkey is not None
                self._valkey.proc = None
                port = self._valkey.start()
        except Exception as exc:  # EmbeddedError, or OSError & co: all a failed restart
            if self._closing.is_set():
                return
            watch.next_try = time.monotonic() + watch.delay
            log.error(
                "embedded %s did not restart: %s; next try in %s",
                watch.label, exc if isinstance(exc, EmbeddedError) else repr(exc),
                seconds(watch.delay),
            )  # fmt: skip
            watch.delay = min(watch.delay * 2, RESTART_DELAY_MAX_SECONDS)
            return
        restarted = time.monotonic()
        proc = self._pg if name == POSTGRES else self._valkey.proc if self._valkey else None
        log.warning(
            "embedded %s restarted: pid %s on 127.0.0.1:%d, %.1f s after its death",
            watch.label, proc.pid if proc else "?", port, restarted - watch.down_since,
        )  # fmt: skip
        watch.dead_pid, watch.down_since, watch.started_at = None, None, restarted

    # ------------------------------------------------------------------ pieces

    def _restart_postgres(self, dead_pid: int | None, *, announce: bool) -> int:
        """Start PostgreSQL again on its port after a stop or a death; returns the port.

        After a death (``dead_pid``: the postmaster we reaped), the children it left are given
        :data:`~livecommerce.embedded.leftovers.LEFTOVER_WAIT_SECONDS` to exit, then
        SIGKILLed; once none is left, its ``postmaster.pid`` is removed (else a new process that
        got the dead postmaster's pid would make PostgreSQL refuse to start: "lock file already
        exists").

        Raises:
            EmbeddedError: it did not start (``start_timeout`` seconds, 3 tries), or a child
                of the dead postmaster would not go away.
        """
        bin_dir = postgres_bin_dir()
        pgdata = self.data_dir / "postgres"
        if dead_pid is not None:
            clear_after_death(bin_dir, pgdata, dead_pid)
        password = credentials(self.data_dir)["postgres"]
        return self._start_postgres(bin_dir, password, announce=announce)

    def _start_postgres(self, bin_dir: Path, password: str, *, announce: bool = True) -> int:
        pgdata = self.data_dir / "postgres"
        user = service_user()
        if user is not None:
            make_reachable(bin_dir)
            make_reachable(self.data_dir)
        if not (pgdata / "PG_VERSION").exists():
            initdb(bin_dir, pgdata, password, user, tmp_dir=self.data_dir, log=self._log)
        stop_orphan_postmaster(pgdata, self._log)
        log_path = self.data_dir / "postgres.log"
        last_error = ""
        for _attempt in range(3):
            if self._closing.is_set():
                raise EmbeddedError("embedded PostgreSQL: start given up, stopping")
            port = self._ports.setdefault("postgres", free_port())
            args = postgres_args(bin_dir, pgdata, port, fsync=self.fsync)
            with log_path.open("ab") as log:
                proc = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                    user=user.pw_uid if user else None,
                    group=user.pw_gid if user else None,
                    preexec_fn=pdeathsig(signal.SIGINT),
                )
            self._pg = proc
            if wait_postgres_ready(proc, pgdata, self.start_timeout, self._closing):
                if announce:
                    self._log(f"embedded PostgreSQL pid {proc.pid} on 127.0.0.1:{port} ({pgdata})")
                return port
            last_error = tail(log_path)
            stop_process(proc, signal.SIGINT, 10.0)
            self._pg = None
            if self._urls is None:  # never handed out: another port may do
                self._ports.pop("postgres", None)
        raise EmbeddedError(f"embedded PostgreSQL did not start: {last_error}")

    def _start_valkey(self, server_bin: Path, password: str) -> int:
        self._valkey = EmbeddedValkey(
            self.data_dir / "valkey",
            password,
            server_bin=server_bin,
            fsync=self.fsync,
            start_timeout=self.start_timeout,
            log_path=self.data_dir / "valkey.log",
        )
        port = self._valkey.start()
        self._log(f"embedded Valkey pid {self._valkey.pid} on 127.0.0.1:{port}")
        return port
