"""Timer lateness: our Redis timer wheel vs arq deferred jobs vs Celery ETA tasks.

One command (see bench/README.md, "Timer lateness")::

    .venv/bin/python bench/timer_lateness.py --json bench/results/timer_lateness-$(date +%F).json
    .venv/bin/python bench/timer_lateness.py --pushes 500 --seconds 20 --rooms 50   # quick run

It starts a private PostgreSQL + Valkey (``EmbeddedBackends``, fsync off) in a temp dir and
schedules the same workload — ``--pushes`` over ``--seconds`` across ``--rooms`` rooms, half of
it in bursts of ``--burst`` identical timestamps on whole seconds (the "everything at 20:00:00"
case), the rest at random milliseconds — through, one after the other:

* ours with 1 and with 3 ``livecommerce serve`` processes: schedules over REST
  (``POST /api/rooms/{id}/schedules``), one WebSocket viewer per room. Lateness to the frame
  published = the frame's ``ts`` (Redis TIME at publish) − its ``due_ms``; receipt latency =
  the viewer's wall clock at receipt − ``due_ms``; fired/missed/duplicates from ``live_schedules``
  and the frames received;
* arq deferred jobs (``_defer_until``, default worker settings, a worker subprocess) on Redis db 1;
* Celery ETA tasks (Redis broker, default settings, a worker subprocess) on Redis db 2;
  for both, lateness = the job's wall clock when it starts − due.

Everything runs on loopback, every wait is bounded, and servers, workers and backends are
stopped in ``finally`` (children also get PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the timer_* helper modules

import timer_ours as ours
import timer_peers as peers
from timer_stats import cpu_share, cpu_snapshot, dist, machine, table

from livecommerce.embedded.processes import pdeathsig

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ARQ_DB, CELERY_DB = 1, 2
TARGET_P99_MS = 5.0


@dataclasses.dataclass(frozen=True, slots=True)
class Push:
    idx: int
    offset_ms: int  # from the run's start time T0
    room: int  # index into the run's rooms
    goods: int  # 0..2


def workload(pushes: int, seconds: int, rooms: int, burst: int, seed: int) -> list[Push]:
    """Half of the pushes in bursts of ``burst`` identical due times (on whole seconds, distinct
    rooms), the rest at random milliseconds in random rooms; sorted by due time."""
    rng = random.Random(seed)
    burst = max(1, min(burst, rooms))
    n_bursts = min((pushes // 2) // burst, max(0, seconds - 1))
    out: list[Push] = []
    for sec in rng.sample(range(1, seconds), n_bursts) if n_bursts else []:
        for room in rng.sample(range(rooms), burst):
            out.append(Push(len(out), sec * 1000, room, rng.randrange(3)))
    while len(out) < pushes:
        out.append(Push(len(out), rng.randrange(seconds * 1000), rng.randrange(rooms), 0))
    out.sort(key=lambda p: (p.offset_ms, p.idx))
    return out


# ---------------------------------------------------------------------------------- statistics


def split(plan: list[Push], late_by_idx: dict[int, float]) -> dict[str, Any]:
    """Lateness of pushes sharing their due time with others (bursts) vs alone (singles)."""
    shared = Counter(p.offset_ms for p in plan)
    offset = {p.idx: p.offset_ms for p in plan}
    return {
        "bursts": dist(v for i, v in late_by_idx.items() if shared[offset[i]] > 1),
        "singles": dist(v for i, v in late_by_idx.items() if shared[offset[i]] == 1),
    }


# ----------------------------------------------------------------------------------- our wheel


async def run_ours(
    backends: ours.Backends, processes: int, plan: list[Push], args: argparse.Namespace
) -> dict[str, Any]:
    label = f"ours-{processes}p"
    say(f"{label}: {processes} livecommerce serve process(es), {args.rooms} rooms")
    rooms = await ours.make_rooms(backends.database_url, args.rooms, label)
    servers = ours.Servers(backends, processes)
    viewers: ours.Viewers | None = None
    profilers: list[subprocess.Popen[bytes]] = []
    try:
        urls = await asyncio.to_thread(servers.start)
        viewers = ours.Viewers(urls, rooms.room_ids)
        await viewers.connect()
        say(f"{label}: {len(rooms.room_ids)} viewers connected to {', '.join(urls)}")
        # Warm-up: one push per process' worth of rooms, fired before the measured workload.
        warm_at = iso(time.time() * 1000 + 1000)
        warm = [
            (r, rooms.goods_ids[0], warm_at, f"warm-{i}") for i, r in enumerate(rooms.room_ids[:10])
        ]
        warm_ids = set((await ours.schedule(urls, rooms.host_token, warm, 4)).values())
        await wait_for(lambda: {r.schedule_id for r in viewers.receipts} >= warm_ids, 15)

        t0 = (time.time() + args.lead) * 1000
        t0 = math.ceil(t0 / 1000) * 1000  # bursts land on whole wall-clock seconds
        items = [
            (
                rooms.room_ids[p.room],
                rooms.goods_ids[p.goods],
                iso(t0 + p.offset_ms),
                f"p{p.idx}",
            )
            for p in plan
        ]
        started = time.time()
        ids = await ours.schedule(urls, rooms.host_token, items, args.concurrency)
        sched_s = time.time() - started
        margin = t0 / 1000 - time.time()
        say(f"{label}: scheduled {len(ids)} in {sched_s:.1f} s; first due in {margin:.1f} s")
        if args.py_spy:
            profilers = start_profilers(servers.pids, label, t0, args)
        wanted = set(ids.values())
        end_ms = t0 + max(p.offset_ms for p in plan)
        await wait_until_ms(t0)
        cpu_start = cpu_snapshot()
        await wait_until_ms(end_ms)
        await wait_for(
            lambda: {r.schedule_id for r in viewers.receipts} >= wanted,
            args.grace,
        )
        cpu = cpu_share(cpu_start, cpu_snapshot())
        await asyncio.sleep(0.5)  # let the dispatchers' PostgreSQL records commit
        rows = await ours.outcomes(backends.database_url, rooms.room_ids)
        if args.raw:
            append_raw(
                args.raw, [{"system": label, **dataclasses.asdict(r)} for r in viewers.receipts]
            )
        stats = ours_stats(label, processes, plan, ids, viewers, rows, sched_s, margin, servers)
        return {**stats, "cpu_while_firing": cpu}
    finally:
        for prof in profilers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                prof.wait(30)
            if prof.poll() is None:
                prof.kill()
                prof.wait()
        if viewers is not None:
            await viewers.close()
        await asyncio.to_thread(servers.stop)


def ours_stats(
    label: str,
    processes: int,
    plan: list[Push],
    ids: dict[str, int],
    viewers: ours.Viewers,
    rows: Sequence[Any],
    sched_s: float,
    margin: float,
    servers: ours.Servers,
) -> dict[str, Any]:
    wanted = set(ids.values())
    got: dict[int, list[ours.Receipt]] = {}
    for r in viewers.receipts:
        if r.schedule_id in wanted:
            got.setdefault(r.schedule_id, []).append(r)
    by_id = {r["id"]: r for r in rows if r["id"] in wanted}
    status = Counter(r["status"] for r in by_id.values())
    not_fired = {i for i in wanted if by_id.get(i) is None or by_id[i]["status"] != "fired"}
    not_received = wanted - set(got)
    first = [sorted(rs, key=lambda r: r.recv_ms)[0] for rs in got.values()]
    published = dist(r.ts - r.due_ms for r in first)
    recorded = dist(r["lateness_ms"] for r in by_id.values() if r["lateness_ms"] is not None)
    problems = servers.problems()
    idx_of = {sid: int(key[1:]) for key, sid in ids.items()}
    out: dict[str, Any] = {
        "system": label,
        "processes": processes,
        "pushes": len(wanted),
        **published,
        "fired": status.get("fired", 0),
        "duplicates": sum(1 for rs in got.values() if len(rs) > 1),
        "missed": len(not_fired | not_received),
        "not_fired": len(not_fired),
        "not_received": len(not_received),
        "skipped": status.get("skipped", 0),
        **split(plan, {idx_of[r.schedule_id]: r.ts - r.due_ms for r in first}),
        "receipt": dist(r.recv_ms - r.due_ms for r in first),
        "publish_to_receipt": dist(r.recv_ms - r.ts for r in first),
        "recorded_lateness": recorded,
        "frames_mismatched_due": sum(
            1 for r in first if by_id[r.schedule_id]["due_ms"] != r.due_ms
        ),
        "viewers_closed_early": viewers.closed_early,
        "schedule_seconds": round(sched_s, 2),
        "schedule_rate_per_s": round(len(wanted) / sched_s, 1) if sched_s else None,
        "scheduled_ahead_s": round(margin, 2),
        "server_log_problems": problems[:5],
    }
    if margin < 0:
        say(f"{label}: WARNING scheduling overlapped firing by {-margin:.1f} s: raise --lead")
    return out


def start_profilers(
    pids: list[int], label: str, t0: float, args: argparse.Namespace
) -> list[subprocess.Popen[bytes]]:
    """py-spy record (raw collapsed stacks) of each server for the firing window."""
    out_dir = Path(args.py_spy)
    out_dir.mkdir(parents=True, exist_ok=True)
    duration = int(max(1, (t0 / 1000 - time.time()) + args.seconds + 2))
    spy = str(Path(sys.executable).parent / "py-spy")
    procs = []
    for pid in pids:
        out = str(out_dir / f"{label}-{pid}.txt")
        cmd = [spy, "record", "--pid", str(pid), "--duration", str(duration), "--rate", "200",
               "--format", "raw", "--output", out]  # fmt: skip
        procs.append(
            subprocess.Popen(
                cmd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=pdeathsig(signal.SIGINT),
            )
        )
    return procs


# ------------------------------------------------------------------------------------- peers


async def run_peer(
    name: str, backends: ours.Backends, plan: list[Push], args: argparse.Namespace
) -> dict[str, Any]:
    db = ARQ_DB if name == "arq" else CELERY_DB
    url = backends.redis_db_url(db)
    say(f"{name}: worker subprocess on Redis db {db}, default settings")
    r = aioredis.Redis.from_url(url)
    await r.flushdb()
    worker = start_worker(name, url, verbose=args.verbose)
    try:
        # Warm-up: one immediate job, so the worker is up and connected before anything is due.
        await enqueue(name, url, [("warm-0", int(time.time() * 1000))])
        await wait_for_async(lambda: _started_keys(r), {"warm-0"}, 60, f"{name} worker start")
        t0 = math.ceil((time.time() + args.peer_lead) * 1000 / 1000) * 1000
        jobs = [(f"{name}-{p.idx}", int(t0 + p.offset_ms)) for p in plan]
        started = time.time()
        await enqueue(name, url, jobs)
        enq_s = time.time() - started
        margin = t0 / 1000 - time.time()
        say(f"{name}: enqueued {len(jobs)} in {enq_s:.1f} s; first due in {margin:.1f} s")
        await wait_until_ms(t0)
        cpu_start = cpu_snapshot()
        await wait_until_ms(t0 + max(p.offset_ms for p in plan))
        keys = {k for k, _ in jobs}
        await wait_for_async(lambda: _started_keys(r), keys, args.grace, None)
        cpu = cpu_share(cpu_start, cpu_snapshot())
        records = [orjson.loads(x) for x in await r.lrange(peers.RESULTS_KEY, 0, -1)]
    finally:
        stop_worker(worker)
        await r.aclose()
    mine = [x for x in records if x["key"] in keys]
    if args.raw:
        append_raw(args.raw, [{"system": name, **x} for x in mine])
    counts = Counter(x["key"] for x in mine)
    firsts: dict[str, dict[str, Any]] = {}
    for x in sorted(mine, key=lambda x: x["start_ms"]):
        firsts.setdefault(x["key"], x)
    return {
        "system": name,
        "pushes": len(jobs),
        **dist(x["start_ms"] - x["due_ms"] for x in firsts.values()),
        **split(
            plan, {int(k.rsplit("-", 1)[1]): x["start_ms"] - x["due_ms"] for k, x in firsts.items()}
        ),
        "fired": len(firsts),
        "duplicates": sum(1 for c in counts.values() if c > 1),
        "missed": len(keys - set(firsts)),
        "early": sum(1 for x in firsts.values() if x["start_ms"] < x["due_ms"]),
        "worker_pids": len({x["pid"] for x in mine}),
        "enqueue_seconds": round(enq_s, 2),
        "cpu_while_firing": cpu,
        "scheduled_ahead_s": round(margin, 2),
    }


def start_worker(name: str, url: str, *, verbose: bool) -> subprocess.Popen[bytes]:
    """``timer_peers.py arq|celery`` in a new session (Celery's prefork children join its group)."""
    out = None if verbose else subprocess.DEVNULL
    return subprocess.Popen(
        [str(peer_python()), str(HERE / "timer_peers.py"), name],
        env={**os.environ, peers.URL_ENV: url, "PYTHONUNBUFFERED": "1"},
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=out,
        start_new_session=True,
        preexec_fn=pdeathsig(),
    )


async def _started_keys(r: aioredis.Redis) -> set[str]:
    return {orjson.loads(x)["key"] for x in await r.lrange(peers.RESULTS_KEY, 0, -1)}


async def enqueue(name: str, url: str, jobs: list[tuple[str, int]]) -> None:
    """Enqueue through the peer's own client, in the peers' environment."""
    proc = await asyncio.create_subprocess_exec(
        str(peer_python()), str(HERE / "timer_peers.py"), "enqueue", name,
        env={**os.environ, peers.URL_ENV: url}, cwd=ROOT, stdin=subprocess.PIPE,
    )  # fmt: skip
    await proc.communicate(orjson.dumps(jobs))
    if proc.returncode != 0:
        raise SystemExit(f"{name}: enqueue failed (exit {proc.returncode})")


PEERS_VENV = ROOT / ".venv-peers"
PEERS_REQUIREMENTS = HERE / "requirements-peers.txt"


def peer_python() -> Path:
    """The interpreter of ``.venv-peers`` (arq, Celery), created and installed on first use."""
    python = PEERS_VENV / "bin" / "python"
    stamp = PEERS_VENV / ".installed"
    if not stamp.exists() or stamp.read_text() != PEERS_REQUIREMENTS.read_text():
        say(f"installing the peers' environment in {PEERS_VENV} (arq, Celery)")
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "-r", str(PEERS_REQUIREMENTS)],
            check=True,
        )
        stamp.write_text(PEERS_REQUIREMENTS.read_text())
    return python


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the worker's process group (ours alone: it was started in a new session)."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # any prefork child left in the group


# -------------------------------------------------------------------------------------- util


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def append_raw(path: str, records: list[dict[str, Any]]) -> None:
    with Path(path).open("ab") as f:
        f.writelines(orjson.dumps(r) + b"\n" for r in records)


def iso(ms: float) -> str:
    return datetime.fromtimestamp(int(ms) / 1000, UTC).isoformat(timespec="milliseconds")


async def wait_until_ms(ms: float) -> None:
    await asyncio.sleep(max(0.0, ms / 1000 - time.time()))


async def wait_for(cond: Any, limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def wait_for_async(get: Any, want: set[str], limit_s: float, what: str | None) -> bool:
    deadline = time.monotonic() + limit_s
    while not want <= await get():
        if time.monotonic() > deadline:
            if what:
                raise RuntimeError(f"timed out waiting for {what}")
            return False
        await asyncio.sleep(0.1)
    return True


# -------------------------------------------------------------------------------------- main


async def run_all(backends: ours.Backends, args: argparse.Namespace) -> dict[str, Any]:
    plan = workload(args.pushes, args.seconds, args.rooms, args.burst, args.seed)
    results: dict[str, Any] = {
        "benchmark": "timer_lateness",
        "date": datetime.now(UTC).date().isoformat(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["bench/timer_lateness.py", *sys.argv[1:]]),
        "workload": {
            "pushes": args.pushes,
            "seconds": args.seconds,
            "rooms": args.rooms,
            "burst_size": args.burst,
            "bursts": sum(1 for c in Counter(p.offset_ms for p in plan).values() if c > 1),
            "pushes_in_bursts": sum(
                c for c in Counter(p.offset_ms for p in plan).values() if c > 1
            ),
            "seed": args.seed,
            "lead_s": args.lead,
            "peer_lead_s": args.peer_lead,
        },
        "machine": machine(),
    }
    runs: dict[str, Any] = {}
    for n in args.processes:
        runs[str(n)] = await run_ours(backends, n, plan, args)
    if runs:
        worst = max(runs, key=lambda k: runs[k]["p99_ms"] or 0)
        results["ours"] = {**runs[worst], "worst_of": worst, "runs": runs}
    for name in args.peers:
        results[name] = await run_peer(name, backends, plan, args)
    peer_p99 = [results[p]["p99_ms"] for p in args.peers if results[p]["p99_ms"] is not None]
    if "ours" in results and peer_p99 and results["ours"]["p99_ms"]:
        results["ratio_p99"] = round(min(peer_p99) / results["ours"]["p99_ms"], 2)
    if "ours" in results:
        o = results["ours"]
        results["target"] = {
            "p99_ms_max": TARGET_P99_MS,
            "p99_ok": all((r["p99_ms"] or 0) <= TARGET_P99_MS for r in runs.values()),
            "no_duplicates": all(r["duplicates"] == 0 for r in runs.values()),
            "no_missed": all(r["missed"] == 0 for r in runs.values()),
            "beats_celery_p99": (
                "celery" in results
                and results["celery"]["p99_ms"] is not None
                and (o["p99_ms"] or 0) < results["celery"]["p99_ms"]
            ),
        }
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pushes", type=int, default=5000, help="scheduled pushes per system")
    p.add_argument("--seconds", type=int, default=60, help="span of the due times")
    p.add_argument("--rooms", type=int, default=500, help="live rooms (one viewer each)")
    p.add_argument("--burst", type=int, default=50, help="pushes per identical-timestamp burst")
    p.add_argument("--seed", type=int, default=1, help="workload random seed")
    p.add_argument(
        "--processes", default="1,3", help="comma list of serve process counts for ours ('' = skip)"
    )
    p.add_argument("--peers", default="arq,celery", help="comma list of arq,celery ('' = skip)")
    p.add_argument("--lead", type=float, default=None, help="seconds from scheduling to T0 (ours)")
    p.add_argument("--peer-lead", type=float, default=None, help="same for arq/Celery")
    p.add_argument("--grace", type=float, default=15.0, help="wait after the last due time")
    p.add_argument("--concurrency", type=int, default=16, help="concurrent schedule POSTs")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.add_argument("--raw", metavar="FILE", help="append every receipt/job start as JSON lines")
    p.add_argument("--py-spy", metavar="DIR", help="py-spy record each server while firing")
    p.add_argument("--verbose", action="store_true", help="show the peer workers' output")
    args = p.parse_args(argv)
    args.processes = [int(x) for x in args.processes.split(",") if x.strip()]
    args.peers = [x.strip() for x in args.peers.split(",") if x.strip()]
    if set(args.peers) - {"arq", "celery"}:
        p.error("--peers takes arq and/or celery")
    if args.lead is None:  # REST scheduling runs at a few hundred per second on 2 cores
        args.lead = 5.0 + args.pushes / 200
    if args.peer_lead is None:
        args.peer_lead = 3.0 + args.pushes / 1000
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    backends = ours.Backends()
    try:
        say(f"starting embedded PostgreSQL + Valkey in {backends.tmp}")
        backends.start()
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            runner = asyncio.run
        results = runner(run_all(backends, args))
    finally:
        backends.stop()
    print()
    print(table(results))
    if "ratio_p99" in results:
        print(f"ratio_p99 (best peer p99 / ours p99): {results['ratio_p99']}")
    if "target" in results:
        print("target:", orjson.dumps(results["target"]).decode())
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
