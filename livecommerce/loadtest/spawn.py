"""Servers started for a load test (``--spawn``), and reading a local server's memory and CPU.

``Cluster`` starts the embedded PostgreSQL + Valkey in a temporary data dir, applies migrations
(``livecommerce migrate``), starts K ``livecommerce serve`` processes on them (free ports, the
per-IP connection limit lifted: every viewer comes from loopback), gets a host token from
``livecommerce host-token`` and creates goods and live rooms over REST. Everything stops at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from livecommerce.db import ensure_database
from livecommerce.embedded import EmbeddedBackends

START_TIMEOUT_SECONDS = 90.0


@dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    url: str = ""
    _ready: threading.Event = field(default_factory=threading.Event)

    def pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if "listening on http://" in line and not self.url:
                self.url = line.split("listening on ", 1)[1].strip()
                self._ready.set()
        self._ready.set()

    def wait_ready(self, timeout: float) -> str:
        self._ready.wait(timeout)
        if not self.url:
            tail = "\n".join(self.lines[-20:])
            raise RuntimeError(f"livecommerce serve did not start:\n{tail}")
        return self.url

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class Cluster:
    """Embedded backends + ``servers`` serve processes, and a host token for them."""

    def __init__(
        self,
        servers: int = 1,
        *,
        env: dict[str, str] | None = None,
        log: Callable[[str], None] = lambda _m: None,
    ) -> None:
        self.count = servers
        self.extra_env = env or {}
        self.log = log
        self.secret = secrets.token_urlsafe(32)
        self.tmp = Path(tempfile.mkdtemp(prefix="livecommerce-loadtest-"))
        self.backends = EmbeddedBackends(self.tmp / "data", fsync=False)
        self.servers: list[ServerProcess] = []
        self.env: dict[str, str] = {}

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.log(f"starting embedded PostgreSQL and Valkey in {self.tmp}")
        urls = self.backends.start()
        base = {
            k: v for k, v in os.environ.items() if not k.startswith("LIVECOMMERCE_") and k != "PORT"
        }
        self.env = {
            **base,
            "PYTHONUNBUFFERED": "1",
            "LIVECOMMERCE_DATABASE_URL": urls.database_url,
            "LIVECOMMERCE_REDIS_URL": urls.redis_url,
            "LIVECOMMERCE_SECURITY_SECRET": self.secret,
            "LIVECOMMERCE_ROOMS_MAX_CONNECTIONS_PER_IP": "1000000",
            "LIVECOMMERCE_SERVER_LOG_FORMAT": "text",
            "LIVECOMMERCE_SERVER_LOG_LEVEL": "warning",
            "LIVECOMMERCE_SERVER_SHUTDOWN_GRACE_SECONDS": "5",
            **self.extra_env,
        }
        asyncio.run(ensure_database(urls.database_url))
        self._cli("migrate")
        for _ in range(self.count):
            self.add_server()
        for s in self.servers:
            s.wait_ready(START_TIMEOUT_SECONDS)
        self.log("servers: " + ", ".join(f"{s.url} (pid {s.proc.pid})" for s in self.servers))

    def add_server(self) -> ServerProcess:
        proc = subprocess.Popen(
            [sys.executable, "-m", "livecommerce", "serve", "--port", "0", "--no-migrate"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=self.env,
            cwd=self.tmp,
        )
        server = ServerProcess(proc)
        threading.Thread(target=server.pump, daemon=True).start()
        self.servers.append(server)
        return server

    def _cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "livecommerce", *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.tmp,
            timeout=START_TIMEOUT_SECONDS,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"livecommerce {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def host_token(self, name: str = "loadtest") -> str:
        return self._cli("host-token", name).strip().splitlines()[-1]

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    @property
    def pids(self) -> list[int]:
        return [s.proc.pid for s in self.servers]

    def stop(self) -> None:
        for s in self.servers:
            with contextlib.suppress(OSError):
                s.stop()
        problems = [
            line
            for s in self.servers
            for line in s.lines
            if "Traceback" in line or " ERROR " in line or '"level": "error"' in line
        ]
        for line in problems[:5]:
            self.log(f"server log: {line}")
        self.backends.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


async def create_rooms(base: str, host_token: str, rooms: int) -> list[tuple[int, list[int]]]:
    """Create ``rooms`` live rooms with three goods each; (room id, goods ids) per room."""
    headers = {"Authorization": f"Bearer {host_token}"}
    out: list[tuple[int, list[int]]] = []
    async with aiohttp.ClientSession(headers=headers) as http:

        async def post(path: str, body: dict[str, Any], ok: int = 201) -> dict[str, Any]:
            async with http.post(base + path, json=body) as resp:
                data: dict[str, Any] = await resp.json()
                if resp.status not in (ok, 200, 201):
                    raise RuntimeError(f"POST {path}: {resp.status} {data}")
                return data

        for r in range(rooms):
            room = await post("/api/rooms", {"title": f"Load test room {r + 1}"})
            goods = [
                (
                    await post(
                        "/api/goods",
                        {
                            "title": f"Load test goods {r + 1}.{g + 1}",
                            "price_fen": 990 + g,
                            "stock": 1000,
                            "images": [f"https://img.example.com/{g}.jpg"],
                        },
                    )
                )["id"]
                for g in range(3)
            ]
            await post(f"/api/rooms/{room['id']}/goods", {"goods_ids": goods}, ok=200)
            await post(f"/api/rooms/{room['id']}/start", {}, ok=200)
            out.append((int(room["id"]), [int(g) for g in goods]))
    return out


# ---------------------------------------------------------------------- local process figures


def rss_kib(pid: int) -> int | None:
    """Resident set size of ``pid`` in KiB (from /proc), or None if unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds used by ``pid`` so far (from /proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def pids_listening(port: int) -> list[int]:
    """PIDs of local processes with a listening TCP socket on ``port`` (via /proc), if visible."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(parts[9])
    if not inodes:
        return []
    found: list[int] = []
    targets = {f"socket:[{i}]" for i in inodes}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in targets:
                        found.append(int(entry.name))
                        break
    return found


def wait_for(pred: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()
