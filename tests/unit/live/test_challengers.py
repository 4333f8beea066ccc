"""Challengers in the run loop (fakes for Kafka, real bundles): records, counts, metrics."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

from examples.stream import generate_labelled_events
from harness.workers import PENGUINS, PENGUINS_CONFIG, PENGUINS_CSV
from model_bundles.build import build_from_config
from model_bundles.bundle import Bundle, load_bundle
from schemas.errors import BadInputError
from tests.support.loop_fakes import TOPIC, Clock, Connector, FakeSource, memory_log
from worker.cli.main import run_cli
from worker.core.events import InputEvent
from worker.core.scoring import BatchScorer
from worker.kafka.types import Outgoing
from worker.live.challengers import Challengers
from worker.live.loop import Worker
from worker.live.settings import WorkerSettings
from worker.monitoring.challenger_metrics import CHALLENGER_METRIC_NAMES, ChallengerMetrics

SETTINGS = WorkerSettings(
    bundle="b", bootstrap_servers="k:1", input_topic=TOPIC, output_topic="out",
    dlq_topic="dlq", instance_id="t", max_batch_events=64, max_events=400,
)  # fmt: skip


@pytest.fixture(scope="module")
def hgb_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    out = tmp_path_factory.mktemp("bundles") / "hgb"
    build_from_config(PENGUINS / "config-hgb.toml", PENGUINS_CSV, out)
    return load_bundle(out)


@pytest.fixture(scope="module")
def numeric_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """The champion's task on the four numeric features only (no island, no sex)."""
    tmp = tmp_path_factory.mktemp("bundles")
    text = PENGUINS_CONFIG.read_text()
    text = text.replace('categorical = ["island", "sex"]', "categorical = []")
    text = text.replace('name = "penguins-species"', 'name = "penguins-numeric"')
    (tmp / "config.toml").write_text(text)
    build_from_config(tmp / "config.toml", PENGUINS_CSV, tmp / "numeric")
    return load_bundle(tmp / "numeric")


def _run(
    champion: Bundle, lines: list[bytes], challengers: list[Bundle], registry: CollectorRegistry
) -> tuple[list[Outgoing], Challengers | None, FakeSource]:
    source = FakeSource({0: lines[: len(lines) // 2], 1: lines[len(lines) // 2 :]})
    connector = Connector(source)
    scorer = BatchScorer(champion)
    extra = None
    if challengers:
        names = [f"{b.manifest.name}@{b.manifest.version}" for b in challengers]
        metrics = ChallengerMetrics(registry, champion, names)
        extra = Challengers(scorer, [BatchScorer(b) for b in challengers], "chal", "t", metrics)
        source.topics.add("chal")
    worker = Worker(SETTINGS, scorer, connector, memory_log()[0], None, Clock(), extra=extra)
    worker.run()
    return [m for b in connector.fake_delivery.delivered for m in b.messages], extra, source


def _events(lines: list[bytes]) -> list[InputEvent]:
    half = len(lines) // 2
    return [
        InputEvent(v, f"k{p}-{i}".encode(), TOPIC, p, i, 1_000 + i)
        for p, part in ((0, lines[:half]), (1, lines[half:]))
        for i, v in enumerate(part)
    ]


def test_challenger_records_join_the_batch_and_equal_its_own_scoring(
    penguins_bundle: Bundle, hgb_bundle: Bundle, registry: CollectorRegistry
) -> None:
    labelled = list(generate_labelled_events(400, 3, poison_rate=0.05))
    lines = [line for line, _ in labelled]
    alone, _, _ = _run(penguins_bundle, lines, [], CollectorRegistry())
    both, extra, source = _run(penguins_bundle, lines, [hgb_bundle], registry)
    assert extra is not None
    assert _bodies(alone) == _bodies([m for m in both if m.topic != "chal"])  # champion unchanged
    champion = [m for m in both if m.topic == "out"]
    challenger = [m for m in both if m.topic == "chal"]
    valid = sum(reason is None for _, reason in labelled)
    assert len(challenger) == len(champion) == valid
    events = _events(lines)
    expected = BatchScorer(hgb_bundle).score(events)
    by_key = {events[i].key: r for i, r in zip(expected.indices, expected.records, strict=True)}
    assert [m.value for m in challenger] == [by_key[m.key] for m in challenger]  # bit for bit
    assert {m.key for m in challenger} == {m.key for m in champion}
    assert all(orjson.loads(m.value)["model"]["digest"] == hgb_bundle.digest for m in challenger)
    name = "penguins-species-hgb@1.0.0"
    assert extra.summary() == {name: {"produced": valid, "rejected": {}}}
    ratio = registry.get_sample_value("scoring_challenger_agreement_ratio", {"challenger": name})
    assert ratio is not None and 0.9 < ratio <= 1.0
    psi = registry.get_sample_value(
        "scoring_challenger_prediction_drift", {"challenger": name, "statistic": "psi"}
    )
    assert psi is not None and 0 <= psi < 0.1
    count = registry.get_sample_value(
        "scoring_challenger_batch_duration_seconds_count", {"challenger": name}
    )
    assert count is not None and count >= 400 / 64
    assert source.committed_offsets == {(TOPIC, 0): 200, (TOPIC, 1): 200}


def test_events_valid_for_the_champion_only_are_counted_not_dead_lettered(
    numeric_bundle: Bundle, penguins_bundle: Bundle, registry: CollectorRegistry
) -> None:
    """The champion needs no island; the challenger does: events without it are its
    rejects, counted per reason, and neither scored by it nor sent to the DLQ."""
    lines = [line for line, _ in generate_labelled_events(400, 4)]
    stripped = set(range(0, 400, 10))
    lines = [
        orjson.dumps({k: v for k, v in orjson.loads(line).items() if k != "island"})
        if i in stripped else line
        for i, line in enumerate(lines)
    ]  # fmt: skip
    messages, extra, _ = _run(numeric_bundle, lines, [penguins_bundle], registry)
    assert extra is not None
    by_topic = {t: sum(m.topic == t for m in messages) for t in ("out", "chal", "dlq")}
    assert by_topic == {"out": 400, "chal": 360, "dlq": 0}
    name = "penguins-species@1.0.0"
    assert extra.summary() == {name: {"produced": 360, "rejected": {"missing_feature": 40}}}
    rejected = registry.get_sample_value(
        "scoring_challenger_rejected_total", {"challenger": name, "reason": "missing_feature"}
    )
    assert rejected == 40


def test_start_up_refuses_the_champion_twice_and_another_task(
    penguins_bundle: Bundle, mass_bundle: Bundle
) -> None:
    scorer = BatchScorer(penguins_bundle)
    with pytest.raises(BadInputError, match="same bundle as the champion"):
        Challengers(scorer, [BatchScorer(penguins_bundle)], "chal", "t")
    with pytest.raises(BadInputError, match="regression bundle, the champion a classification"):
        Challengers(scorer, [BatchScorer(mass_bundle)], "chal", "t")


def _bodies(messages: list[Outgoing]) -> list[tuple[str, bytes | None, bytes | None]]:
    return [(m.topic, m.key, m.value) for m in messages]


def test_challenger_metric_families(registry: CollectorRegistry, penguins_bundle: Bundle) -> None:
    ChallengerMetrics(registry, penguins_bundle, ["c@1"])
    families = {m.name for m in registry.collect()}
    exported = {n.removesuffix("_total") for n in CHALLENGER_METRIC_NAMES}
    assert families == exported


def test_a_rolled_back_batch_is_counted_once(
    penguins_bundle: Bundle, hgb_bundle: Bundle, registry: CollectorRegistry
) -> None:
    lines = [line for line, _ in generate_labelled_events(200, 5)]
    source = FakeSource({0: lines})
    connector = Connector(source)
    connector.fake_delivery.outcomes = [True, False, True, False]  # two batches rolled back
    scorer = BatchScorer(penguins_bundle)
    metrics = ChallengerMetrics(registry, penguins_bundle, ["penguins-species-hgb@1.0.0"])
    extra = Challengers(scorer, [BatchScorer(hgb_bundle)], "chal", "t", metrics)
    source.topics.add("chal")
    settings = SETTINGS.model_copy(update={"max_events": 200})
    Worker(settings, scorer, connector, memory_log()[0], None, Clock(), extra=extra).run()
    delivered = [m for b in connector.fake_delivery.delivered for m in b.messages]
    assert sum(m.topic == "chal" for m in delivered) == 200
    assert extra.summary()["penguins-species-hgb@1.0.0"]["produced"] == 200
    produced = registry.get_sample_value(
        "scoring_challenger_predictions_produced_total",
        {"challenger": "penguins-species-hgb@1.0.0"},
    )
    assert produced == 200


def test_cli_refuses_half_the_options_and_a_bad_challenger(
    penguins_bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["run", "--bundle", str(penguins_bundle_dir), "--bootstrap-servers", "127.0.0.1:1",
            "--input-topic", "in", "--output-topic", "out", "--dlq-topic", "dlq",
            "--instance-id", "t"]  # fmt: skip
    assert run_cli([*base, "--challenger", str(penguins_bundle_dir)]) == 2
    assert "--challenger and --challenger-topic go together" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(penguins_bundle_dir, broken)
    manifest = broken / "manifest.json"
    manifest.write_text(manifest.read_text().replace("penguins-species", "penguins-tampered"))
    code = run_cli([*base, "--challenger", str(broken), "--challenger-topic", "chal"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1, err
    code = run_cli([*base, "--challenger", str(penguins_bundle_dir), "--challenger-topic", "c"])
    assert code == 2 and "same bundle as the champion" in capsys.readouterr().err
