"""Stopping: at once with no batch in hand (broker away or not); a second signal ends it."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest

from model_bundles.bundle import Bundle
from tests.support.loop_fakes import TOPIC, Connector, FakeSource, failure, lines_of, memory_log
from worker.core.scoring import BatchScorer
from worker.kafka.clients import FailureKind
from worker.live.loop import Worker
from worker.live.settings import WorkerSettings
from worker.live.stopping import SignalStop, close_within

SETTINGS = WorkerSettings(
    bundle="b",
    bootstrap_servers="k:1",
    input_topic=TOPIC,
    output_topic="out",
    dlq_topic="dlq",
    instance_id="t",
    retry_backoff_initial_ms=1,
    retry_backoff_max_ms=1,
)


class AwaySource(FakeSource):
    """A broker that never answers a metadata request; the third attempt brings SIGTERM."""

    def __init__(self) -> None:
        super().__init__({0: []})
        self.asked = 0
        self.worker: Worker | None = None

    def partition_count(self, topic: str, timeout_s: float) -> int | None:
        self.asked += 1
        if self.asked == 3 and self.worker is not None:
            self.worker.request_stop("SIGTERM")
        raise failure(FailureKind.RETRIABLE, "_TRANSPORT", broker_down=True)


def test_a_stop_while_the_broker_is_away_and_no_batch_in_hand_is_clean_and_at_once(
    penguins_bundle: Bundle,
) -> None:
    source = AwaySource()
    log, buffer = memory_log()
    worker = Worker(SETTINGS, BatchScorer(penguins_bundle), Connector(source), log)
    source.worker = worker

    summary = worker.run()  # before: RuntimeFailure "the batch in hand was not committed"

    assert summary.stop_reason == "SIGTERM" and source.asked == 3
    assert source.closed
    stop = lines_of(buffer)[-1]
    assert stop["event"] == "stop" and stop["reason"] == "SIGTERM"


def test_the_first_signal_asks_to_stop_and_the_second_ends_the_process() -> None:
    exits: list[int] = []
    stops: list[str] = []
    signals = SignalStop(exits.append)
    signals.handle(signal.SIGTERM)  # still starting: nothing in hand, exit 0 at once
    assert exits == [0]

    exits.clear()
    signals = SignalStop(exits.append)
    signals.attach(stops.append)
    signals.handle(signal.SIGTERM)
    assert stops == ["SIGTERM"] and exits == []
    signals.handle(signal.SIGINT)
    assert exits == [128 + signal.SIGINT]


def test_a_close_that_blocks_is_left_behind_while_the_broker_is_away(
    penguins_bundle: Bundle,
) -> None:
    source = AwaySource()
    log, _ = memory_log()
    worker = Worker(SETTINGS, BatchScorer(penguins_bundle), Connector(source), log)
    worker.health.unavailable("test")
    release = threading.Event()
    assert not close_within(lambda: release.wait(30) and None, worker.health)
    release.set()

    def refuse() -> None:
        raise ValueError("closing failed")

    with pytest.raises(ValueError, match="closing failed"):
        close_within(refuse, worker.health)


# Imports the console entry as `scoring-worker ARGS` would (with the signal mask a fresh
# process has: pytest's may hold SIGTERM after in-process tests), and notes whether SIGTERM was
# already held when the first third-party module (click) started to import.
_FIRST_IMPORT_PROBE = """
import signal, sys
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])  # as if fresh
sys.argv = ["scoring-worker", *sys.argv[1:]]
class Probe:
    held = None
    def find_spec(self, name, path=None, target=None):
        if name == "click" and Probe.held is None:
            Probe.held = signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, [])
        return None
sys.meta_path.insert(0, Probe())
import worker.cli.main
print(Probe.held)
"""


@pytest.mark.parametrize(("args", "held"), [(["run", "--help"], True), (["score"], False)])
def test_run_holds_sigterm_before_its_slow_imports_begin(args: list[str], held: bool) -> None:
    """A SIGTERM during `run`'s imports (seconds on a loaded machine) gives the start-up
    stop line and exit 0 (issue 20), not death by signal; other commands keep the default."""
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_IMPORT_PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == str(held)
