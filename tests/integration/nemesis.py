"""The nemesis of the chaos soak (`chaos.py`): a seeded schedule of faults against a fleet
of `scoring-worker run` processes and the local broker, and the supervisor that restarts
what died (as an orchestrator would) and acts as the operator the worker asks for.

Faults: SIGKILL + restart, SIGTERM + restart, SIGSTOP past the transaction timeout then
SIGCONT (a zombie), an extra worker joining then leaving, a plain consumer joining the
group for a few seconds, a broker crash or stop + restart, and pairs of them at once.
"""

from __future__ import annotations

import random
import shlex
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from group_faults import plain_member
from kafka_broker import LocalBroker
from transactions_tool import kafka_transactions
from worker_harness import Topics, WorkerProcess

KINDS = ("kill", "term", "zombie", "join", "plain", "broker")
WEIGHTS = (4, 3, 2, 2, 2, 1)
PAIRED = 0.25
"""Share of steps that apply two faults at once (say a zombie and a join, issue 20's run A)."""


@dataclass
class Fleet:
    """The workers by instance id, and how to start one."""

    start: Callable[[str], WorkerProcess]
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    retired: list[WorkerProcess] = field(default_factory=list)
    paused_until: dict[str, float] = field(default_factory=dict)
    intended: set[str] = field(default_factory=set)
    """Instances stopped on purpose (not restarted by the supervisor)."""
    counts: Counter[str] = field(default_factory=Counter)

    def launch(self, instance: str) -> None:
        old = self.workers.get(instance)
        if old is not None:
            self.retired.append(old)
        self.workers[instance] = self.start(instance)

    def signal(self, instance: str, sig: signal.Signals) -> None:
        w = self.workers.get(instance)
        if w is not None and w.proc.poll() is None:
            w.send(sig)

    def all(self) -> list[WorkerProcess]:
        return [*self.retired, *self.workers.values()]


class Nemesis:
    """Applies one seeded fault per step; ``supervise`` between steps."""

    def __init__(
        self,
        rng: random.Random,
        fleet: Fleet,
        base: list[str],
        broker: LocalBroker | None,
        topics: Topics,
        bootstrap: str,
    ) -> None:
        self.rng = rng
        self.fleet = fleet
        self.base = base
        self.broker = broker
        self.topics = topics
        self.bootstrap = bootstrap
        self.operator_aborts = 0
        self.exits: Counter[int] = Counter()
        self.struck = ""
        """The victim of the fault being applied (for the step's line)."""
        self.termed_paused: set[str] = set()
        """Zombies sent SIGTERM while paused (every base worker was one at the time)."""

    def step(self) -> str:
        """One fault, or (one step in ``PAIRED``) two kinds at once; returns what was done
        (``term:w1+zombie:w2``)."""
        kinds = [self._kind()]
        if self.rng.random() < PAIRED:
            kinds.append(self._kind())
        kinds.sort(key=lambda k: k == "plain")  # the plain member's stay blocks: last
        done = []
        for kind in kinds:
            self.struck = ""
            getattr(self, f"_{kind}")()
            self.fleet.counts[kind] += 1
            done.append(f"{kind}:{self.struck}" if self.struck else kind)
        if len(kinds) > 1:
            self.fleet.counts["paired"] += 1
        return "+".join(done)

    def _kind(self) -> str:
        kind = self.rng.choices(KINDS, WEIGHTS)[0]
        return "kill" if kind == "broker" and self.broker is None else kind

    def _victim(self) -> str:
        live = [i for i in self.base if i not in self.fleet.paused_until]
        self.struck = self.rng.choice(live or self.base)
        return self.struck

    def _kill(self) -> None:
        victim = self._victim()
        w = self.fleet.workers[victim]
        if w.proc.poll() is None:
            w.kill()
        self.fleet.launch(victim)

    def _term(self) -> None:
        victim = self._victim()
        w = self.fleet.workers[victim]
        if victim in self.fleet.paused_until and w.proc.poll() is None:
            # every base worker is a zombie: the SIGTERM stays pending until SIGCONT, and
            # ``supervise`` waits for the exit when it wakes the worker
            w.send(signal.SIGTERM)
            self.termed_paused.add(victim)
            return
        if w.proc.poll() is None:
            code = w.stop(60)[0]
            self.exits[code] += 1
        self.fleet.launch(victim)

    def _zombie(self) -> None:
        victim = self._victim()
        self.fleet.signal(victim, signal.SIGSTOP)
        self.fleet.paused_until[victim] = time.monotonic() + self.rng.uniform(20, 30)

    def _join(self) -> None:
        name = f"extra{self.fleet.counts['join']}"
        self.fleet.launch(name)
        self.fleet.intended.add(name)
        self.fleet.paused_until[f"leave:{name}"] = time.monotonic() + self.rng.uniform(10, 20)

    def _plain(self) -> None:
        with plain_member(self.bootstrap, self.topics.group, self.topics.input):
            deadline = time.monotonic() + self.rng.uniform(3, 8)
            while time.monotonic() < deadline:
                self.supervise()
                time.sleep(0.5)  # the member's stay: the fault's length

    def _broker(self) -> None:
        assert self.broker is not None
        (self.broker.kill if self.rng.random() < 0.5 else self.broker.terminate)()
        self.broker.up()

    def supervise(self) -> None:
        """Wake zombies and make extras leave when due; restart what exited (running the
        operator's `kafka-transactions.sh` commands a worker asked for first)."""
        now = time.monotonic()
        for key, until in list(self.fleet.paused_until.items()):
            if now < until:
                continue
            del self.fleet.paused_until[key]
            if key.startswith("leave:"):
                w = self.fleet.workers.pop(key[6:])
                self.exits[w.stop(60)[0]] += 1
                self.fleet.retired.append(w)
            else:
                self.fleet.signal(key, signal.SIGCONT)
                if key in self.termed_paused:
                    self.termed_paused.discard(key)
                    w = self.fleet.workers[key]
                    self.exits[w.wait_stopped(60)] += 1
                    self.fleet.launch(key)
        for instance, w in list(self.fleet.workers.items()):
            if w.proc.poll() is None or instance in self.fleet.paused_until:
                continue
            self.exits[w.proc.returncode] += 1
            self._operate(w.log_path)
            self.fleet.launch(instance)

    def _operate(self, log: Path) -> None:
        lines = log.read_text(errors="replace").splitlines()
        last = lines[-1] if lines else ""
        if "abort it with: " not in last:
            return
        for command in last.split("abort it with: ", 1)[1].split(" ; "):
            if command.strip().startswith("kafka-transactions.sh"):
                kafka_transactions(*shlex.split(command)[1:])
                self.operator_aborts += 1

    def wake_all(self) -> None:
        for key in list(self.fleet.paused_until):
            self.fleet.paused_until[key] = 0.0
        self.supervise()
