"""Helpers shared by tests: an app on a real port, and `livecommerce` child processes."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from livecommerce.http_server import make_runner
from livecommerce.realtime.site import start_site

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class AppServer:
    runner: web.AppRunner
    url: str
    app: web.Application

    def ws_url(self, path: str = "/ws") -> str:
        return self.url.replace("http://", "ws://") + path


async def start_app(app: web.Application) -> AppServer:
    runner = make_runner(app, shutdown_timeout=5)
    await runner.setup()
    await start_site(runner, "127.0.0.1", 0)
    host, port = runner.addresses[0][:2]
    return AppServer(runner=runner, url=f"http://{host}:{port}", app=app)


async def stop_app(server: AppServer) -> None:
    await server.runner.cleanup()


async def http(
    method: str,
    url: str,
    *,
    json: object = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, object] | str]:
    """One request on a fresh session: (status, parsed JSON body or text)."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, json=json, data=data, headers=headers) as resp,
    ):
        text = await resp.text()
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, text


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a `livecommerce` child: ours minus LIVECOMMERCE_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECOMMERCE_") and k != "PORT"}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class ServeProcess:
    """`livecommerce serve` as a child process, its stdout collected line by line."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)

    @classmethod
    def start(cls, *args: str, env: dict[str, str], cwd: Path | str = ROOT) -> ServeProcess:
        proc = subprocess.Popen(
            [sys.executable, "-m", "livecommerce", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=cwd,
        )
        sp = cls(proc)
        threading.Thread(target=sp._pump, daemon=True).start()
        return sp

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                self._queue.put(line.rstrip("\n"))
        finally:
            self.proc.stdout.close()
            self._queue.put(None)

    def wait_for(self, needle: str, timeout: float = 60.0) -> str:
        """The first line containing ``needle`` (reading on), or AssertionError with the output."""
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if needle in line:
                return line
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if needle in line:
                return line
        raise AssertionError(f"no line with {needle!r}; output so far:\n" + "\n".join(self.lines))

    def url(self, timeout: float = 60.0) -> str:
        line = self.wait_for("listening on http://", timeout)
        return line.split("listening on ", 1)[1].strip()

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("process did not exit in time") from None
        self.drain()
        return code

    def drain(self) -> None:
        while True:
            try:
                line = self._queue.get(timeout=2)
            except queue.Empty:
                return
            if line is None:
                return
            self.lines.append(line)


def run_cli(
    *args: str, env: dict[str, str], cwd: Path | str = ROOT, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "livecommerce", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
