"""``serve --workers N``: N server processes sharing one port (SO_REUSEPORT), one supervisor.

Python runs one core per process; a live-commerce node wants them all. The supervisor starts the
backends (embedded or configured) and migrates once, then runs N ``serve --reuse-port`` children
on the same address; the kernel spreads new connections over them. Each child is an ordinary
node (its own Redis subscription, dispatcher, pools), exactly as if N nodes ran behind a load
balancer. SIGINT/SIGTERM are passed on and every child drains as usual; if one child dies, the
others are stopped too and the supervisor exits 1 (let the process manager restart the set).
Children get PR_SET_PDEATHSIG, so a killed supervisor leaves no orphans.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

from livecommerce.config import Settings
from livecommerce.embedded.processes import free_port, pdeathsig

READY_TIMEOUT_SECONDS = 120.0


def run_workers(
    settings: Settings, count: int, config_path: str | None, say: Callable[[str], None]
) -> int:
    host = settings.server.host
    port = settings.server.port or free_port(host if host not in ("", "0.0.0.0") else "127.0.0.1")
    env = {
        **os.environ,
        "LIVECOMMERCE_DATABASE_URL": settings.database.url,
        "LIVECOMMERCE_REDIS_URL": settings.redis.url,
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PORT", None)
    args = [sys.executable, "-m", "livecommerce"]
    if config_path:
        args += ["--config", config_path]
    # --workers 1: a child is one server, whatever server.workers says.
    args += ["serve", "--host", host, "--port", str(port), "--no-migrate", "--reuse-port"]
    args += ["--workers", "1"]
    children: list[subprocess.Popen[str]] = []
    ready = threading.Semaphore(0)
    stopping = threading.Event()

    # One lock for every line this process prints (the relays run in threads): print() writes the
    # text and the newline separately, so unlocked lines of two threads could run together.
    out_lock = threading.Lock()

    def emit(line: str) -> None:
        with out_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def locked_say(message: str) -> None:
        with out_lock:
            say(message)

    def relay(proc: subprocess.Popen[str], n: int) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            text = line.rstrip("\n")
            emit(f"[worker {n}] {text}")
            if "listening on http://" in text:
                ready.release()
        proc.stdout.close()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.set()
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for n in range(1, count + 1):
            proc = subprocess.Popen(
                args,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                preexec_fn=pdeathsig(signal.SIGTERM),
            )
            children.append(proc)
            threading.Thread(target=relay, args=(proc, n), daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        for _ in children:
            if not ready.acquire(timeout=max(0.0, deadline - time.monotonic())):
                locked_say("a worker did not start; stopping")
                on_signal(signal.SIGTERM, None)
                break
        else:
            locked_say(f"{count} workers listening on http://{host}:{port}")
        # Wait until any child exits; then stop the rest.
        failed = False
        while all(c.poll() is None for c in children):
            time.sleep(0.2)
        if not stopping.is_set():
            failed = True
            locked_say("a worker exited unexpectedly; stopping the others")
            on_signal(signal.SIGTERM, None)
        grace = settings.server.shutdown_grace_seconds + 10
        for child in children:
            try:
                child.wait(grace)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        codes = [c.returncode for c in children]
        return 1 if failed or any(code not in (0, -signal.SIGTERM) for code in codes) else 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
