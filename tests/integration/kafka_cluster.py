"""The local three-node KRaft cluster of `scripts/kafka-local cluster` (issue 32); no pytest.

`LocalCluster` starts, stops, kills and pauses its nodes (each a combined broker and
controller) and answers who holds a role right now: the leader of a partition, the
transaction coordinator of a transactional id, the group coordinator of a consumer group,
the active controller. Every wait polls against a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from kafka_broker import (
    QUIET,
    BrokerError,
    kafka_local,
    kafka_local_status,
    live_pid,
    poll_until,
    process_gone,
)

TRANSACTION_STATE = "__transaction_state"
CONSUMER_OFFSETS = "__consumer_offsets"


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode`` of ``text`` (a signed 32-bit int, over UTF-16 units)."""
    h = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + int.from_bytes(data[i : i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def coordinator_partition(key: str, partitions: int) -> int:
    """The partition of ``__transaction_state`` / ``__consumer_offsets`` that holds ``key``:
    Kafka's ``Utils.abs(key.hashCode) % partitions`` (FindCoordinator answers its leader)."""
    h = java_string_hash(key)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


@dataclass(frozen=True)
class Node:
    """One node of the cluster, from ``scripts/kafka-local cluster status``."""

    id: int
    bootstrap: str
    pid_file: Path
    log_file: Path
    data_dir: Path

    @property
    def pid(self) -> int | None:
        """The node's JVM pid until its process is gone, else None."""
        return live_pid(self.pid_file)


class LocalCluster:
    """The cluster run by ``scripts/kafka-local cluster``, addressed by its environment
    (``KAFKA_CLUSTER_PORT_BASE``, ``KAFKA_CLUSTER_DIR``)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self.env["KAFKA_SASL_SSL_PORT"] = ""  # the cluster has no SASL_SSL listener
        info = self._status()
        self.bootstrap = info["bootstrap"]
        self.nodes = {
            n: Node(
                n,
                info[f"node.{n}.bootstrap"],
                Path(info[f"node.{n}.pid_file"]),
                Path(info[f"node.{n}.log_file"]),
                Path(info[f"node.{n}.data_dir"]),
            )
            for n in range(1, int(info["nodes"]) + 1)
        }

    def _run(self, *args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
        return kafka_local("cluster", *args, env=self.env, timeout_s=timeout_s)

    def _status(self) -> dict[str, str]:
        return kafka_local_status("cluster", env=self.env)

    def _checked(self, *args: str, timeout_s: float) -> None:
        done = self._run(*args, timeout_s=timeout_s)
        if done.returncode != 0:
            raise BrokerError(f"scripts/kafka-local cluster {' '.join(args)}: {done.stderr}")

    # --- the processes ------------------------------------------------------------------

    def up(self, timeout_s: float = 600) -> str:
        """Start every node not running; returns the bootstrap list once three answer."""
        self._checked("up", timeout_s=timeout_s)
        return self.bootstrap

    def down(self, timeout_s: float = 180) -> None:
        self._checked("down", timeout_s=timeout_s)

    def start(self, node: int, timeout_s: float = 300) -> None:
        """Start ``node`` (a no-op when it runs) and wait until it answers."""
        self._checked("start", str(node), timeout_s=timeout_s)

    def kill(self, node: int, timeout_s: float = 30) -> None:
        """SIGKILL ``node`` (a crash: no controlled shutdown) and wait until it is gone."""
        self._signal(node, signal.SIGKILL, timeout_s)

    def terminate(self, node: int, timeout_s: float = 120) -> None:
        """SIGTERM ``node`` (a controlled shutdown: its leaderships move first), wait."""
        self._signal(node, signal.SIGTERM, timeout_s)

    def pause(self, node: int) -> None:
        """SIGSTOP ``node``: it keeps its sockets and, until its session expires, its roles."""
        pid = self._pid(node)
        os.kill(pid, signal.SIGSTOP)

    def resume(self, node: int) -> None:
        pid = self._pid(node)
        os.kill(pid, signal.SIGCONT)

    def _pid(self, node: int) -> int:
        pid = self.nodes[node].pid
        if pid is None:
            raise BrokerError(f"cluster node {node} is not running")
        return pid

    def _signal(self, node: int, sig: signal.Signals, timeout_s: float) -> None:
        pid = self._pid(node)
        os.kill(pid, sig)

        def gone() -> bool | None:
            return True if process_gone(pid) else None

        poll_until(f"node {node} (pid {pid}) to exit after {sig.name}", timeout_s, gone)

    def running(self) -> list[int]:
        return [n for n, node in self.nodes.items() if node.pid is not None]

    # --- roles --------------------------------------------------------------------------

    def _admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap, **QUIET})

    def leader(self, topic: str, partition: int, timeout_s: float = 10) -> int:
        """The node leading ``topic``/``partition`` now (-1: none)."""
        meta = self._admin().list_topics(topic=topic, timeout=timeout_s).topics[topic]
        if meta.error is not None:
            raise KafkaException(meta.error)
        return int(meta.partitions[partition].leader)

    def _internal_leader(self, topic: str, key: str, timeout_s: float) -> int:
        meta = self._admin().list_topics(topic=topic, timeout=timeout_s)
        parts = meta.topics[topic].partitions
        if not parts:
            raise KafkaException(f"{topic} has no partitions yet")
        return int(parts[coordinator_partition(key, len(parts))].leader)

    def transaction_coordinator(self, transactional_id: str, timeout_s: float = 10) -> int:
        """The node coordinating ``transactional_id``: the leader of its partition of
        ``__transaction_state`` (what FindCoordinator answers; checked against
        ``kafka-transactions.sh describe``)."""
        return self._internal_leader(TRANSACTION_STATE, transactional_id, timeout_s)

    def group_coordinator(self, group: str, timeout_s: float = 10) -> int:
        """The node coordinating consumer group ``group``: the leader of its partition of
        ``__consumer_offsets``. (Not DescribeGroups: librdkafka's admin calls to a group
        coordinator time out or crash around a failover, librdkafka#5040.)"""
        return self._internal_leader(CONSUMER_OFFSETS, group, timeout_s)

    def active_controller(self) -> int:
        """The KRaft quorum's leader: the ``leaderId`` of the newest ``quorum-state`` any
        node wrote (the Metadata API names a random broker as controller under KRaft)."""
        best = (-1, -1)
        for node in self.nodes.values():
            state = node.data_dir / "__cluster_metadata-0" / "quorum-state"
            try:
                found = json.loads(state.read_text())
            except (OSError, ValueError):
                continue
            best = max(best, (int(found.get("leaderEpoch", -1)), int(found.get("leaderId", -1))))
        return best[1]

    # --- whole again ------------------------------------------------------------------

    def under_replicated(self, topics: Sequence[str], timeout_s: float = 10) -> list[str]:
        """``topic/partition`` of ``topics`` (and the internal topics) whose in-sync
        replicas are fewer than their replicas, or that have no leader."""
        meta = self._admin().list_topics(timeout=timeout_s)
        if len(meta.brokers) < len(self.nodes):
            return [f"{len(meta.brokers)} of {len(self.nodes)} brokers"]
        short = []
        for name in [*topics, TRANSACTION_STATE, CONSUMER_OFFSETS]:
            topic = meta.topics.get(name)
            if topic is None:
                continue
            for p in topic.partitions.values():
                if p.leader < 0 or len(p.isrs) < len(p.replicas):
                    short.append(f"{name}/{p.id}")
        return short

    def wait_whole(
        self, topics: Sequence[str], deadline_s: float = 180, meanwhile: Callable[[], None] = int
    ) -> float:
        """Wait until every node runs and every partition of ``topics`` and of the internal
        topics has all its replicas in sync; calls ``meanwhile`` while waiting. Returns
        the seconds waited."""
        started = time.monotonic()

        def whole() -> bool | None:
            meanwhile()
            if len(self.running()) == len(self.nodes) and not self.under_replicated(topics):
                return True
            time.sleep(0.5)  # polling pace
            return None

        poll_until("the cluster to have every replica in sync", deadline_s, whole)
        return time.monotonic() - started
