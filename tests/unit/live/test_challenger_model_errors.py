"""A challenger that fails never stops the champion (issue 26 with ``--challenger``).

Real bundles (``model_error_fixtures``: a trusted ``Hooks`` transformer raising on
``a >= raise_at``), fakes for Kafka. The champion raises at ``a >= 1000``; the broken
challenger at ``a >= 5``, or (its environment broken) on everything, golden sample too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from model_bundles.bundle import Bundle, load_bundle
from schemas.wire_names import HEADER_INSTANCE, HEADER_SCORED_AT
from tests.support.loop_fakes import TOPIC, Clock, Connector, FakeSource, lines_of, memory_log
from tests.support.model_error_fixtures import RAISE_AT, build_model_error_bundle, event
from worker.core.model_errors import CIRCUIT_BATCHES
from worker.core.scoring import BatchScorer
from worker.kafka.types import Outgoing
from worker.live.challengers import Challengers, challenger_name
from worker.live.loop import Worker
from worker.live.settings import WorkerSettings
from worker.monitoring.challenger_metrics import ChallengerMetrics

SETTINGS = WorkerSettings(
    bundle="b", bootstrap_servers="k:1", input_topic=TOPIC, output_topic="out",
    dlq_topic="dlq", instance_id="t", max_batch_events=64, max_events=400,
)  # fmt: skip
BROKEN_AT = 5.0
POISON = {10: b"{not json", 200: b"[1, 2]", 350: b"{not json either"}
CHAMPION_ERRORS = (150, 360)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    root = tmp_path_factory.mktemp("challenger-model-errors")
    return {
        "champion": build_model_error_bundle(root / "champion"),
        "broken": build_model_error_bundle(root / "broken", raise_at=BROKEN_AT, version="2"),
        "healthy": build_model_error_bundle(root / "healthy", version="3"),
    }


def _load(bundles: dict[str, tuple[Path, str]], which: str) -> Bundle:
    """A fresh ``Bundle`` (a test may break its pipeline in memory)."""
    path, digest = bundles[which]
    return load_bundle(path, trust_code=[digest])


def _lines() -> list[bytes]:
    """Events 0..99: even ones the challenger scores, odd ones it raises on; from 100 on
    it raises on every event. Some dead letters for the champion among them."""
    lines = []
    for i in range(400):
        a = 0.5 if i < 100 and i % 2 == 0 else BROKEN_AT + 1 + i / 1000
        if i in CHAMPION_ERRORS:
            a = RAISE_AT + i
        lines.append(POISON.get(i) or orjson.dumps({"event_id": f"e{i}", **event(a=a)}))
    return lines


def _run(
    champion: Bundle, challengers: list[Bundle], lines: list[bytes]
) -> tuple[list[Outgoing], FakeSource, Challengers | None, CollectorRegistry, list[Any]]:
    source = FakeSource({0: lines})
    connector = Connector(source)
    scorer = BatchScorer(champion)
    log, stream = memory_log()
    registry = CollectorRegistry()
    extra = None
    if challengers:
        scorers = [BatchScorer(b) for b in challengers]
        metrics = ChallengerMetrics(registry, champion, [challenger_name(s) for s in scorers])
        extra = Challengers(scorer, scorers, "chal", "t", metrics, log=log)
        source.topics.add("chal")
    Worker(SETTINGS, scorer, connector, log, None, Clock(), extra=extra).run()
    messages = [m for b in connector.fake_delivery.delivered for m in b.messages]
    return messages, source, extra, registry, lines_of(stream)


def _champion(messages: list[Outgoing]) -> list[tuple[str, bytes | None, bytes | None, Any]]:
    """The champion's records and dead letters, headers but the run-dependent ones."""
    varying = {HEADER_INSTANCE, HEADER_SCORED_AT}
    return [
        (m.topic, m.key, m.value, [h for h in m.headers or () if h[0] not in varying])
        for m in messages
        if m.topic != "chal"
    ]


def test_a_challenger_raising_on_every_event_is_disabled_and_the_champion_flows_on(
    bundles: dict[str, tuple[Path, str]],
) -> None:
    lines = _lines()
    alone, alone_source, _, _, _ = _run(_load(bundles, "champion"), [], lines)
    broken = _load(bundles, "broken")
    messages, source, extra, registry, log = _run(_load(bundles, "champion"), [broken], lines)
    assert extra is not None

    assert _champion(messages) == _champion(alone)  # bit for bit, dead letters too
    assert sum(m.topic == "dlq" for m in messages) == len(POISON) + len(CHAMPION_ERRORS)
    assert source.committed_offsets == alone_source.committed_offsets == {(TOPIC, 0): 400}

    # batches of 64: the first two mix scored and raising events (no circuit), then
    # CIRCUIT_BATCHES batches of only raising events open the circuit; no more after
    tripped_at = (2 + CIRCUIT_BATCHES) * 64
    challenged = [i for i in range(tripped_at) if i not in POISON and i not in CHAMPION_ERRORS]
    produced = [i for i in challenged if i < 100 and i % 2 == 0]
    chal = [m for m in messages if m.topic == "chal"]
    assert [orjson.loads(m.value or b"")["event_id"] for m in chal] == [f"e{i}" for i in produced]
    name = challenger_name(BatchScorer(broken))
    summary = extra.summary()[name]
    rejected = len(challenged) - len(produced)
    assert summary["produced"] == len(produced)
    assert summary["rejected"] == {"model_error": rejected}
    assert "ValueError" in summary["disabled"] and f"beyond {BROKEN_AT}" in summary["disabled"]

    (line,) = [e for e in log if e["event"] == "challenger_disabled"]
    assert line["challenger"] == name and line["digest"] == broken.digest
    assert line["level"] == "error" and "ValueError" in line["error"]
    assert not [e for e in log if e["event"] in ("model_failure", "fatal")]
    labels = {"challenger": name}
    assert registry.get_sample_value("scoring_challenger_disabled", labels) == 1
    counted = registry.get_sample_value(
        "scoring_challenger_rejected_total", {**labels, "reason": "model_error"}
    )
    assert counted == rejected
    assert registry.get_sample_value("scoring_challenger_predictions_produced_total", labels) == (
        len(produced)
    )


def test_a_challenger_whose_golden_sample_fails_too_is_disabled_at_once_the_others_go_on(
    bundles: dict[str, tuple[Path, str]],
) -> None:
    """The challenger's environment is broken (every model call raises, its golden sample
    too): disabled at its first batch; another challenger and the champion go on."""
    lines = [orjson.dumps({"event_id": f"e{i}", **event(a=i / 400)}) for i in range(400)]
    alone, _, _, _, _ = _run(_load(bundles, "champion"), [], lines)
    broken, healthy = _load(bundles, "broken"), _load(bundles, "healthy")
    broken.pipeline.named_steps["hooks"].raise_at = float("-inf")
    messages, source, extra, registry, log = _run(
        _load(bundles, "champion"), [broken, healthy], lines
    )
    assert extra is not None
    assert _champion(messages) == _champion(alone)
    assert source.committed_offsets == {(TOPIC, 0): 400}
    chal = [orjson.loads(m.value or b"") for m in messages if m.topic == "chal"]
    assert [r["model"]["digest"] for r in chal] == [healthy.digest] * 400
    broken_name = challenger_name(BatchScorer(broken))
    summary = extra.summary()
    assert summary[broken_name]["produced"] == 0
    assert summary[broken_name]["rejected"] == {"model_error": 64}  # its first batch only
    assert "golden sample too" in summary[broken_name]["disabled"]
    healthy_name = challenger_name(BatchScorer(healthy))
    assert summary[healthy_name] == {"produced": 400, "rejected": {}}
    (line,) = [e for e in log if e["event"] == "challenger_disabled"]
    assert line["challenger"] == broken_name
    labels = {"challenger": healthy_name}
    assert registry.get_sample_value("scoring_challenger_disabled", labels) == 0


def test_challengers_are_scored_inside_the_watchdogs_batch_and_their_isolating_is_progress(
    bundles: dict[str, tuple[Path, str]],
) -> None:
    """A challenger that hangs is a stuck batch (not ready, lag, exit 3 at
    --model-timeout), and a challenger bisecting a batch is progress, as the champion."""
    lines = _lines()[:128]
    champion = BatchScorer(_load(bundles, "champion"))
    challenger = BatchScorer(_load(bundles, "broken"))
    extra = Challengers(champion, [challenger], "chal", "t")
    source = FakeSource({0: lines})
    source.topics.add("chal")
    settings = SETTINGS.model_copy(update={"max_events": len(lines)})
    worker = Worker(
        settings, champion, Connector(source), memory_log()[0], None, Clock(), extra=extra
    )
    order: list[str] = []
    started, finished, messages = (
        worker.watchdog.batch_started, worker.watchdog.batch_finished, extra.messages
    )  # fmt: skip

    def spy(name: str, call: Any) -> Any:
        def wrapped(*args: Any) -> Any:
            order.append(name)
            return call(*args)

        return wrapped

    worker.watchdog.batch_started = spy("started", started)  # type: ignore[method-assign]
    worker.watchdog.batch_finished = spy("finished", finished)  # type: ignore[method-assign]
    extra.messages = spy("challengers", messages)  # type: ignore[method-assign]
    worker.run()
    assert order == ["started", "challengers", "finished"] * 2
    assert challenger.isolating_calls > 0  # the odd events of the batches, bisected
    assert worker.watchdog.calls() == champion.isolating_calls + challenger.isolating_calls
