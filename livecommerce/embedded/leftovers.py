"""What a dead PostgreSQL leaves behind: its children and its ``postmaster.pid``.

A postmaster that crashed (or was SIGKILLed) leaves its ``postmaster.pid`` and perhaps children
behind; before a restart, :func:`clear_after_death` waits for those children (SIGKILL after
:data:`LEFTOVER_WAIT_SECONDS`) and then removes the stale pid file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path

from livecommerce.embedded.errors import EmbeddedError

LEFTOVER_WAIT_SECONDS = 5.0  # a dead postmaster's children get this long to exit before SIGKILL

# The package's one logger (README, the tests' caplog): not this module's __name__.
log = logging.getLogger("livecommerce.embedded")


def leftovers(binary: Path, cwd: Path) -> list[int]:
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


def end_leftovers(binary: Path, cwd: Path) -> None:
    """Wait up to :data:`LEFTOVER_WAIT_SECONDS` for the processes :func:`leftovers` finds to
    exit (a postmaster's children exit on their own right after it dies), then SIGKILL the rest
    and wait as long again.

    Raises:
        EmbeddedError: some were still there after the SIGKILL.
    """

    def wait() -> list[int]:
        deadline = time.monotonic() + LEFTOVER_WAIT_SECONDS
        while (pids := leftovers(binary, cwd)) and time.monotonic() < deadline:
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


def clear_after_death(bin_dir: Path, pgdata: Path, dead_pid: int) -> None:
    """After the death of postmaster ``dead_pid`` (reaped by us): end its children
    (:func:`end_leftovers`), then remove its ``postmaster.pid`` (else a new process that got the
    dead postmaster's pid would make PostgreSQL refuse to start: "lock file already exists").

    Raises:
        EmbeddedError: a child of the dead postmaster would not go away.
    """
    end_leftovers(bin_dir / "postgres", pgdata)
    pidfile = pgdata / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError):
        if int(pidfile.read_text().splitlines()[0]) == dead_pid:
            pidfile.unlink()
