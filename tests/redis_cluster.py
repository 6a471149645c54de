"""A real six-node Redis Cluster (three masters, three replicas) on loopback, with the fault tests cause: SIGKILL."""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
import redis.cluster

from tests.helpers import stop_process

NODES = 6
# Ports are drawn here, not from the kernel's ephemeral range: a node's cluster bus listens on port + 10000, which
# must be free too and below 65536, and a kernel-chosen port above 55535 makes `redis-cli --cluster create` fail.
PORT_RANGE = (20000, 40000)
BUS_OFFSET = 10000


def _can_bind(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_ports(count: int) -> list[int]:
    """``count`` ports whose bus ports (port + 10000) are free as well, none colliding with another's bus port."""
    ports: list[int] = []
    used: set[int] = set()
    for _ in range(1000):
        port = random.randint(*PORT_RANGE)
        if {port, port + BUS_OFFSET} & used or not (_can_bind(port) and _can_bind(port + BUS_OFFSET)):
            continue
        ports.append(port)
        used |= {port, port + BUS_OFFSET}
        if len(ports) == count:
            return ports
    raise RuntimeError(f"found only {len(ports)} free port pairs (port, port + {BUS_OFFSET}) in {PORT_RANGE}")


def _port_of(address: str) -> int:
    """``127.0.0.1:7000@17000`` (a CLUSTER NODES address) → 7000."""
    return int(address.split("@", maxsplit=1)[0].rsplit(":", 1)[1])


class LocalRedisCluster:
    """Six redis-server processes joined by ``redis-cli --cluster create``; ``start()`` returns once all say ok.

    Named so as not to clash with ``redis.cluster.RedisCluster``, the client that ``client()`` returns.
    """

    def __init__(self) -> None:
        server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if server is None or cli is None:
            missing = "redis-server" if server is None else "redis-cli"
            raise RuntimeError(f"{missing} is not installed: run `make test` (it installs it) or apt-get install it")
        self.server_binary, self.cli_binary = server, cli
        self.ports = free_cluster_ports(NODES)
        self.root = Path(tempfile.mkdtemp(prefix="clusternb-redis-cluster-"))
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        # Slot ranges each killed master served when it died, so wait_failover knows which slots must move.
        self._killed_slots: dict[int, list[tuple[int, int]]] = {}

    @property
    def url(self) -> str:
        """The first node only: cluster clients discover the rest. No ``/0``: a cluster has database 0 only."""
        return f"redis://127.0.0.1:{self.ports[0]}"

    @property
    def alive(self) -> list[int]:
        return [port for port in self.ports if port in self.procs]

    def start(self) -> LocalRedisCluster:
        try:
            for port in self.ports:
                self._start_node(port)
            for port in self.ports:
                self._wait_ping(port)
            self._create()
            self._wait(15, self._formed, "no cluster_state:ok with synced replicas on every node")
        except BaseException:
            self.stop()  # six processes would otherwise outlive the fixture that never got the object
            raise
        return self

    def _start_node(self, port: int) -> None:
        node_dir = self.root / str(port)
        node_dir.mkdir()
        args = [self.server_binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir)]
        args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000"]
        args += ["--save", "", "--appendonly", "no", "--logfile", "redis.log"]
        # Replicas sync at once instead of after the default 5 s diskless delay, and may always be promoted:
        # a failover test must not depend on how recently the replica heard from its master.
        args += ["--repl-diskless-sync-delay", "0", "--cluster-replica-validity-factor", "0"]
        self.procs[port] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _wait_ping(self, port: int) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                with self._node(port) as node:
                    node.ping()
                return
            except redis.ConnectionError:
                if self.procs[port].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {port}\n{self._log_tails()}") from None
                time.sleep(0.02)

    def _create(self) -> None:
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        args = [self.cli_binary, "--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes"]
        done = subprocess.run(args, capture_output=True, text=True, timeout=60)
        if done.returncode != 0 or "[OK] All 16384 slots covered" not in done.stdout:
            raise RuntimeError(f"redis-cli --cluster create failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def _formed(self) -> bool:
        """All six ok and known to each, replicas synced: else a failover test run at once would not fail over."""
        for port in self.ports:
            info = self._cluster_info(port)
            if info.get("cluster_state") != "ok" or info.get("cluster_known_nodes") != str(NODES):
                return False
            with self._node(port) as node:
                replication = node.info("replication")
                if replication["role"] == "slave" and replication.get("master_link_status") != "up":
                    return False
        return True

    def _node(self, port: int) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2, decode_responses=True
        )

    def _cluster_info(self, port: int) -> dict[str, str]:
        """CLUSTER INFO's text parsed here: redis-py's parsed shapes for CLUSTER replies vary between versions."""
        with self._node(port) as node:
            text = str(node.execute_command("CLUSTER", "INFO"))
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def _nodes(self) -> list[list[str]]:
        """CLUSTER NODES as seen by a live node, one split line per node."""
        with self._node(self.alive[0]) as node:
            text = str(node.execute_command("CLUSTER", "NODES"))
        return [line.split() for line in text.splitlines() if line.strip()]

    def _slot_owners(self, port: int) -> list[tuple[int, int, int]]:
        """(first slot, last slot, master port) per range, from CLUSTER SLOTS as node ``port`` sees it."""
        with self._node(port) as node:
            ranges = node.execute_command("CLUSTER", "SLOTS")
        return [(int(first), int(last), int(master[1])) for first, last, master, *_ in ranges]

    def client(self, **kwargs: object) -> redis.cluster.RedisCluster:
        """A cluster client for assertions, started from a live node: ``url``'s node may be the one a test killed."""
        kwargs.setdefault("socket_timeout", 2)
        return redis.cluster.RedisCluster.from_url(f"redis://127.0.0.1:{self.alive[0]}", **kwargs)

    def masters(self) -> list[int]:
        """Ports flagged master and not failed, as a live node sees them (a dead master stays listed, flagged fail)."""
        return sorted(_port_of(fields[1]) for fields in self._nodes() if self._live_master(fields[2]))

    @staticmethod
    def _live_master(flags: str) -> bool:
        names = flags.split(",")
        return "master" in names and "fail" not in names and "fail?" not in names

    def master_of(self, key: str) -> int:
        """Port of the master now serving ``key``'s slot."""
        with self._node(self.alive[0]) as node:
            slot = int(node.execute_command("CLUSTER", "KEYSLOT", key))
        for first, last, port in self._slot_owners(self.alive[0]):
            if first <= slot <= last:
                return port
        raise RuntimeError(f"no node serves slot {slot} (key {key!r})")

    def kill(self, port: int) -> None:
        """SIGKILL one node: it vanishes mid-conversation, as on an OOM kill or a crashed host."""
        self._killed_slots[port] = [(first, last) for first, last, owner in self._slot_owners(port) if owner == port]
        proc = self.procs.pop(port)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def wait_failover(self, old_master_port: int, timeout: float = 10) -> int:
        """Wait until a replica holds the killed master's slots and all live nodes say ok; return its port."""
        slots = self._killed_slots.get(old_master_port)
        if not slots:
            raise ValueError(f"port {old_master_port} was not a master when kill() was called on it")
        promoted: set[int] = set()

        def taken_over() -> bool:
            promoted.clear()
            for port in self.alive:
                if self._cluster_info(port).get("cluster_state") != "ok":
                    return False
                for first, last, owner in self._slot_owners(port):
                    if owner not in self.procs:
                        return False
                    if any(first <= lo <= last for lo, _ in slots):
                        promoted.add(owner)
            return len(promoted) == 1

        self._wait(
            timeout, taken_over, f"no replica of {old_master_port} promoted with cluster_state:ok on all live nodes"
        )
        return promoted.pop()

    def _wait(self, timeout: float, done: Callable[[], bool], failure: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if done():
                    return
            except redis.RedisError:
                pass  # a node still loading or a view still settling: ask again
            if time.monotonic() > deadline:
                raise RuntimeError(f"{failure} within {timeout} s\n{self._log_tails()}")
            time.sleep(0.05)

    def _log_tails(self, lines: int = 5) -> str:
        """The last lines of every node's log: stop() deletes the logs, so a failure message must carry them."""
        tails = []
        for port in self.ports:
            log = self.root / str(port) / "redis.log"
            text = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else ["(no log)"]
            tails.append(f"--- node {port}:\n" + "\n".join(text))
        return "\n".join(tails)

    def stop(self) -> None:
        for port in list(self.procs):
            proc = self.procs.pop(port)
            proc.send_signal(signal.SIGCONT)  # a node a test paused (SIGSTOP) cannot act on SIGTERM
            stop_process(proc)
        shutil.rmtree(self.root, ignore_errors=True)
