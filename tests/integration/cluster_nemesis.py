"""Cluster faults for the chaos soak (`chaos.py --cluster`, issue 32), and what the
workers' own metrics said meanwhile.

`ClusterNemesis` is the nemesis of `nemesis.py` (worker faults, seeded, paired) plus the
faults of a three-node cluster (`kafka_cluster.LocalCluster`): SIGKILL and clean stop
(SIGTERM, a controlled shutdown) of the leader of an input or output partition, of the
transaction coordinator of a live worker's transactional id, of the group coordinator;
a rolling restart of the three nodes; a node paused (SIGSTOP) past its broker session
(a zombie broker); the active controller killed. Every third step is a cluster fault, the
others are drawn from all kinds. Before a cluster fault the nemesis waits until every
replica is in sync again (two nodes down at once is an outage, not a failover); each
downed node is restarted after a seeded few seconds, as a supervisor would.

`FleetSampler` reads every live worker's ``/readyz`` and ``/metrics`` once a second;
`fault_report` turns the samples into per-fault figures: the longest commit gap of a
worker alive throughout the step, rollbacks, seconds not ready, and the lies (not ready
for 3 s or more while committing; ready while not committing for 15 s with a backlog;
lag 0 while not committing for 10 s).
"""

from __future__ import annotations

import random
import socket
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka_cluster import LocalCluster
from nemesis import KINDS, WEIGHTS, Fleet, Nemesis
from prometheus_client.parser import text_string_to_metric_families
from worker_harness import Topics

CLUSTER_KINDS = (
    "leader_kill",
    "leader_stop",
    "txn_coord_kill",
    "txn_coord_stop",
    "group_coord_kill",
    "group_coord_stop",
    "rolling",
    "broker_zombie",
    "controller_kill",
)
CLUSTER_WEIGHTS = (2, 2, 2, 1, 2, 1, 1, 1, 1)
CLUSTER_EVERY = 3
"""Every third step's first fault is a cluster fault (so at least a third of the steps)."""
BROKER_SESSION_S = 5.0
"""``broker.session.timeout.ms`` of `scripts/kafka-local` (a paused node is fenced after)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class StepRecord:
    at: float
    ended: float
    label: str
    kinds: list[str]


class ClusterNemesis(Nemesis):
    """`Nemesis` with the cluster faults; records every step for `fault_report`."""

    def __init__(
        self,
        rng: random.Random,
        fleet: Fleet,
        base: list[str],
        cluster: LocalCluster,
        topics: Topics,
        bootstrap: str,
        partitions: int,
    ) -> None:
        super().__init__(rng, fleet, base, None, topics, bootstrap)
        self.cluster = cluster
        self.partitions = partitions
        self.steps: list[StepRecord] = []
        self._force_cluster = False
        self._step_kinds: list[str] = []

    def step(self) -> str:
        self._force_cluster = len(self.steps) % CLUSTER_EVERY == 0
        self._step_kinds = []
        at = time.monotonic()
        done = super().step()
        self.steps.append(StepRecord(at, time.monotonic(), done, self._step_kinds))
        return done

    def _kind(self) -> str:
        if self._force_cluster:
            self._force_cluster = False
            kind = self.rng.choices(CLUSTER_KINDS, CLUSTER_WEIGHTS)[0]
        else:
            weights = (*WEIGHTS[:-1], *CLUSTER_WEIGHTS)  # "broker" is the one-node fault
            kind = self.rng.choices((*KINDS[:-1], *CLUSTER_KINDS), weights)[0]
        self._step_kinds.append(kind)
        return kind

    # --- helpers ----------------------------------------------------------------------

    def _while(self, action: Callable[[], Any]) -> None:
        """Run ``action`` in a thread, supervising the fleet until it returns."""
        failed: list[BaseException] = []

        def run() -> None:
            try:
                action()
            except BaseException as exc:  # re-raised in the nemesis' thread
                failed.append(exc)

        thread = threading.Thread(target=run, name="cluster-action", daemon=True)
        thread.start()
        while thread.is_alive():
            self.supervise()
            thread.join(0.5)
        if failed:
            raise failed[0]

    def _stay(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.supervise()
            time.sleep(0.5)  # the fault's length, not a synchronisation

    def _whole(self) -> None:
        """Every node up and every replica in sync before the next cluster fault."""
        topics = [self.topics.input, self.topics.output, self.topics.dlq]
        self.cluster.wait_whole(topics, 300, self.supervise)

    def _bounce(self, node: int, hard: bool) -> None:
        """Kill or stop ``node``, leave it down a seeded 2-8 s, start it again."""
        if hard:
            self.cluster.kill(node)
        else:
            self._while(lambda: self.cluster.terminate(node))
        self._stay(self.rng.uniform(2, 8))
        self._while(lambda: self.cluster.start(node))

    def _short(self, topic: str) -> str:
        return "in" if topic == self.topics.input else "out"

    def _live_worker(self) -> str:
        live = [
            i
            for i in self.base
            if i not in self.fleet.paused_until and self.fleet.workers[i].proc.poll() is None
        ]
        return self.rng.choice(live or self.base)

    # --- the faults -------------------------------------------------------------------

    def _leader(self, hard: bool) -> None:
        self._whole()
        topic = self.rng.choice([self.topics.input, self.topics.output])
        partition = self.rng.randrange(self.partitions)
        node = self.cluster.leader(topic, partition)
        self.struck = f"node{node}=leader({self._short(topic)}/{partition})"
        self._bounce(node, hard)

    def _leader_kill(self) -> None:
        self._leader(hard=True)

    def _leader_stop(self) -> None:
        self._leader(hard=False)

    def _txn_coord(self, hard: bool) -> None:
        self._whole()
        instance = self._live_worker()
        node = self.cluster.transaction_coordinator(f"{self.topics.group}-{instance}")
        self.struck = f"node{node}=txn_coordinator({instance})"
        self._bounce(node, hard)

    def _txn_coord_kill(self) -> None:
        self._txn_coord(hard=True)

    def _txn_coord_stop(self) -> None:
        self._txn_coord(hard=False)

    def _group_coord(self, hard: bool) -> None:
        self._whole()
        node = self.cluster.group_coordinator(self.topics.group)
        self.struck = f"node{node}=group_coordinator(group)"
        self._bounce(node, hard)

    def _group_coord_kill(self) -> None:
        self._group_coord(hard=True)

    def _group_coord_stop(self) -> None:
        self._group_coord(hard=False)

    def _rolling(self) -> None:
        """Each node in turn: controlled shutdown, start, every replica in sync again."""
        order = list(self.cluster.nodes)
        self.rng.shuffle(order)
        self.struck = "nodes" + ",".join(map(str, order)) + "=rolling"
        for node in order:
            self._whole()
            self._while(lambda n=node: self.cluster.terminate(n))  # type: ignore[misc]
            self._while(lambda n=node: self.cluster.start(n))  # type: ignore[misc]

    def _broker_zombie(self) -> None:
        """The leader of an input partition stalls (a GC pause, a stuck disk) past its
        session: the controller fences it and moves its leaderships; then it wakes."""
        self._whole()
        partition = self.rng.randrange(self.partitions)
        node = self.cluster.leader(self.topics.input, partition)
        paused_s = BROKER_SESSION_S + self.rng.uniform(3, 10)
        self.struck = f"node{node}=leader(in/{partition}) paused {paused_s:.0f}s"
        self.cluster.pause(node)
        try:
            self._stay(paused_s)
        finally:
            self.cluster.resume(node)

    def _controller_kill(self) -> None:
        self._whole()
        node = self.cluster.active_controller()
        self.struck = f"node{node}=active_controller"
        self._bounce(node, hard=True)


# --- what the workers said --------------------------------------------------------------


@dataclass
class Sample:
    at: float
    instance: str
    pid: int
    ready: bool
    lag: float
    assigned: bool
    rolled_back: float
    since_commit: float


@dataclass
class FleetSampler:
    """Reads ``/readyz`` and ``/metrics`` of every live, unpaused worker each ``every_s``."""

    fleet: Fleet
    ports: dict[str, int]
    every_s: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fleet-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            for instance, w in list(self.fleet.workers.items()):
                port = self.ports.get(instance)
                if port is None or instance in self.fleet.paused_until or w.proc.poll() is not None:
                    continue
                sample = _sample(instance, w.pid, port)
                if sample is not None:
                    self.samples.append(sample)


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), ""


def _sample(instance: str, pid: int, port: int) -> Sample | None:
    try:
        ready_code, _ = _get(port, "/readyz")
        code, text = _get(port, "/metrics")
    except OSError:
        return None  # not serving yet (starting) or gone
    if code != 200:
        return None
    lag, assigned, rolled, since = 0.0, False, 0.0, 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "scoring_consumer_lag":
                lag += s.value
                assigned = True
            elif s.name == "scoring_transactions_rolled_back_total":
                rolled += s.value
            elif s.name == "scoring_seconds_since_last_commit":
                since = s.value
    return Sample(time.monotonic(), instance, pid, ready_code == 200, lag, assigned, rolled, since)


@dataclass
class StepFigures:
    label: str
    kinds: list[str]
    gap_s: float
    """Longest time a worker alive through the step went without committing."""
    rollbacks: int
    not_ready_s: float
    lies: list[str]


def _step_figures(
    step: StepRecord, until: float, samples: list[Sample], every_s: float
) -> StepFigures:
    window = [s for s in samples if step.at <= s.at < until]
    by_pid: dict[int, list[Sample]] = defaultdict(list)
    for s in window:
        by_pid[s.pid].append(s)
    before = {s.pid: s for s in samples if s.at < step.at}  # the last sample before
    gap, rollbacks, not_ready, lies = 0.0, 0, 0.0, []
    for pid, run in by_pid.items():
        through = pid in before  # alive before the step: its gaps are the step's
        base = before[pid].rolled_back if through else 0.0
        rollbacks += int(max(s.rolled_back for s in run) - base)
        not_ready += every_s * sum(not s.ready for s in run if s.assigned)
        if through:
            gap = max(gap, *(s.since_commit for s in run if s.assigned), 0.0)
        streak = 0
        for s in run:
            committing = s.since_commit < 1.5 * every_s
            streak = streak + 1 if (not s.ready and committing) else 0
            if streak == 3:
                lies.append(f"{s.instance} not ready while committing")
            if through and s.ready and s.since_commit > 15 and s.lag > 0:
                lies.append(f"{s.instance} ready, {s.since_commit:.0f}s without a commit")
            if through and s.assigned and s.since_commit > 10 and s.lag == 0:
                lies.append(f"{s.instance} lag 0, {s.since_commit:.0f}s without a commit")
    return StepFigures(step.label, step.kinds, gap, rollbacks, not_ready, sorted(set(lies)))


def fault_report(steps: list[StepRecord], samples: list[Sample], every_s: float) -> list[str]:
    """Per step a line, then per kind (steps of that one kind alone) the median and
    maximum commit gap and rollbacks; the lies, if any."""
    samples = sorted(samples, key=lambda s: s.at)
    figures = []
    for i, step in enumerate(steps):
        until = steps[i + 1].at if i + 1 < len(steps) else float("inf")
        figures.append(_step_figures(step, until, samples, every_s))
    lines = []
    for f in figures:
        lie = f" LIES[{'; '.join(f.lies)}]" if f.lies else ""
        lines.append(
            f"  fault {f.label}: longest_commit_gap={f.gap_s:.1f}s rollbacks={f.rollbacks} "
            f"not_ready={f.not_ready_s:.0f}s{lie}"
        )
    alone: dict[str, list[StepFigures]] = defaultdict(list)
    for f in figures:
        if len(f.kinds) == 1:
            alone[f.kinds[0]].append(f)
    for kind, fs in sorted(alone.items()):
        gaps = [f.gap_s for f in fs]
        rolls = [f.rollbacks for f in fs]
        lines.append(
            f"  kind {kind} x{len(fs)}: commit_gap median={statistics.median(gaps):.1f}s "
            f"max={max(gaps):.1f}s rollbacks median={statistics.median(rolls):g} "
            f"max={max(rolls)}"
        )
    lied = sum(bool(f.lies) for f in figures)
    lines.append(f"  metrics: {len(samples)} samples, {lied} steps with a lying readiness/lag")
    return lines
