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

import bisect
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

from confluent_kafka import KafkaException
from kafka_broker import end_offsets
from kafka_cluster import LocalCluster
from nemesis import KINDS, WEIGHTS, Fleet, Nemesis
from prometheus_client.parser import text_string_to_metric_families
from worker_harness import Topics
from worker_verify import GroupWatch

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
"""Every third step's first fault is a cluster fault (so at least a third of the steps);
the other draws take a cluster fault with half these weights (a fifth of them)."""
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
        self._restarting: list[threading.Thread] = []
        """Nodes being started again in the background (as a supervisor would)."""

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
            # "broker" (last) is the one-node fault
            weights = (*WEIGHTS[:-1], *(w / 2 for w in CLUSTER_WEIGHTS))
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
        for thread in self._restarting:
            while thread.is_alive():
                self.supervise()
                thread.join(0.5)
        self._restarting.clear()
        topics = [self.topics.input, self.topics.output, self.topics.dlq]
        self.cluster.wait_whole(topics, 300, self.supervise)

    def _bounce(self, node: int, hard: bool) -> None:
        """Kill or stop ``node``, leave it down a seeded 1-5 s, then start it again in the
        background (a node takes 20-50 s to start on this machine): the worker faults go
        on meanwhile, the next cluster fault waits for it (`_whole`)."""
        if hard:
            self.cluster.kill(node)
        else:
            self._while(lambda: self.cluster.terminate(node))
        self._stay(self.rng.uniform(1, 5))
        thread = threading.Thread(target=self.cluster.start, args=(node,), daemon=True)
        thread.start()
        self._restarting.append(thread)

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
    """One worker's ``/readyz`` and metrics at ``at`` (monotonic seconds)."""

    at: float
    instance: str
    pid: int
    ready: bool
    lags: dict[int, float]
    """Input partition -> ``scoring_consumer_lag`` (the partitions it owns)."""
    rolled_back: float
    since_commit: float


@dataclass
class Truth:
    """The broker's view at ``at``: input partition -> high watermark minus the group's
    committed offset (events not yet delivered, a batch in hand included)."""

    at: float
    pending: dict[int, int]


@dataclass
class FleetSampler:
    """Reads ``/readyz`` and ``/metrics`` of every live, unpaused worker each ``every_s``,
    and in a second thread what the broker says is pending (`Truth`)."""

    fleet: Fleet
    ports: dict[str, int]
    bootstrap: str
    topics: Topics
    partitions: int
    every_s: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    truths: list[Truth] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for target in (self._workers, self._broker):
            thread = threading.Thread(target=target, name="fleet-sampler", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _workers(self) -> None:
        while not self._stop.wait(self.every_s):
            for instance, w in list(self.fleet.workers.items()):
                port = self.ports.get(instance)
                if port is None or instance in self.fleet.paused_until or w.proc.poll() is not None:
                    continue
                sample = _sample(instance, w.pid, port)
                if sample is not None:
                    self.samples.append(sample)

    def _broker(self) -> None:
        watch = GroupWatch(self.bootstrap, self.topics.group, self.topics.input, self.partitions)
        while not self._stop.wait(self.every_s):
            try:
                ends = end_offsets(self.bootstrap, self.topics.input, deadline_s=5)
            except (KafkaException, TimeoutError):
                continue  # mid-failover: no answer this time
            committed = watch.committed()  # empty while a transaction holds the offsets
            if committed:
                pending = {p: end - committed.get(p, 0) for p, end in ends.items()}
                self.truths.append(Truth(time.monotonic(), pending))


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
    lags: dict[int, float] = {}
    rolled, since = 0.0, 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "scoring_consumer_lag":
                lags[int(s.labels["partition"])] = s.value
            elif s.name == "scoring_transactions_rolled_back_total":
                rolled += s.value
            elif s.name == "scoring_seconds_since_last_commit":
                since = s.value
    return Sample(time.monotonic(), instance, pid, ready_code == 200, lags, rolled, since)


@dataclass
class StepFigures:
    label: str
    kinds: list[str]
    gap_s: float
    """Longest time a worker alive through the step, with events pending on its
    partitions, went without committing: the time to resume."""
    rollbacks: int
    not_ready_s: float
    """Worker-seconds not ready (of workers owning partitions)."""
    under_s: float
    """Longest run of samples in which a worker's lag understated what the broker says is
    pending on its partitions by more than ``UNDERSTATED`` events."""
    lies: list[str]


UNDERSTATED = 1000
"""Lag below the broker's pending count by more than this (a batch in hand is at most
500 events here) counts as understated."""


def _truth_at(truths: list[Truth], at: float) -> Truth | None:
    i = bisect.bisect_left([t.at for t in truths], at)
    near = [t for t in truths[max(i - 1, 0) : i + 1] if abs(t.at - at) <= 1.5]
    return min(near, key=lambda t: abs(t.at - at)) if near else None


def _step_figures(
    step: StepRecord, until: float, samples: list[Sample], truths: list[Truth], every_s: float
) -> StepFigures:
    window = [s for s in samples if step.at <= s.at < until]
    by_pid: dict[int, list[Sample]] = defaultdict(list)
    for s in window:
        by_pid[s.pid].append(s)
    before = {s.pid: s for s in samples if s.at < step.at}  # the last sample before
    gap, rollbacks, not_ready, under, lies = 0.0, 0, 0.0, 0.0, []
    for pid, run in by_pid.items():
        through = pid in before  # alive before the step: its gaps are the step's
        base = before[pid].rolled_back if through else 0.0
        rollbacks += int(max(s.rolled_back for s in run) - base)
        not_ready += every_s * sum(not s.ready for s in run if s.lags)
        busy = streak = 0
        under_streak = 0.0
        for s in run:
            truth = _truth_at(truths, s.at)
            pending = sum((truth.pending if truth else s.lags).get(p, 0) for p in s.lags)
            if through and pending > 0:
                gap = max(gap, s.since_commit)
            committing = s.since_commit < 1.5 * every_s
            busy = busy + 1 if (not s.ready and committing) else 0
            if busy == 3:
                lies.append(f"{s.instance} not ready 3s while committing")
            if through and s.ready and s.since_commit > 15 and pending > 0:
                streak += 1
                if streak == 1:
                    lies.append(f"{s.instance} ready with {pending} pending, no commit for 15s")
            else:
                streak = 0
            if truth is not None and pending - sum(s.lags.values()) > UNDERSTATED:
                under_streak += every_s
                under = max(under, under_streak)
                if under_streak >= 10:
                    lies.append(f"{s.instance} lag understated 10s ({pending} pending)")
            else:
                under_streak = 0.0
    return StepFigures(step.label, step.kinds, gap, rollbacks, not_ready, under, sorted(set(lies)))


def fault_report(sampler: FleetSampler, steps: list[StepRecord]) -> list[str]:
    """Per step a line, then per kind (steps of that one kind alone) the median and
    maximum time to resume and rollbacks; the lies, if any."""
    samples = sorted(sampler.samples, key=lambda s: s.at)
    truths = sorted(sampler.truths, key=lambda t: t.at)
    figures = []
    for i, step in enumerate(steps):
        until = steps[i + 1].at if i + 1 < len(steps) else float("inf")
        figures.append(_step_figures(step, until, samples, truths, sampler.every_s))
    lines = []
    for f in figures:
        lie = f" LIES[{'; '.join(f.lies)}]" if f.lies else ""
        lines.append(
            f"  fault {f.label}: resumed_in={f.gap_s:.1f}s rollbacks={f.rollbacks} "
            f"not_ready={f.not_ready_s:.0f}s lag_understated={f.under_s:.0f}s{lie}"
        )
    alone: dict[str, list[StepFigures]] = defaultdict(list)
    for f in figures:
        if len(f.kinds) == 1:
            alone[f.kinds[0]].append(f)
    for kind, fs in sorted(alone.items()):
        gaps = [f.gap_s for f in fs]
        rolls = [f.rollbacks for f in fs]
        lines.append(
            f"  kind {kind} x{len(fs)}: resumed_in median={statistics.median(gaps):.1f}s "
            f"max={max(gaps):.1f}s rollbacks median={statistics.median(rolls):g} "
            f"max={max(rolls)} not_ready median={statistics.median(f.not_ready_s for f in fs):.0f}s"
        )
    lied = sum(bool(f.lies) for f in figures)
    lines.append(
        f"  metrics: {len(samples)} worker samples, {len(truths)} broker samples, "
        f"{lied} steps with a lying readiness or lag"
    )
    return lines
