"""The scoring core in process: bytes in, record bytes out (``BatchScorer.score``), against
the bare ``predict_proba`` on the prebuilt model frames of the same batches.

The gap between the two is what decoding, validation, frame building and encoding cost
around the model. A per-stage split of one batch, and a sweep over batch sizes, say where.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from bench.common import Figure
from model_bundles.bundle import Bundle
from model_bundles.events import check_batch, events_to_frame
from worker.core.events import InputEvent
from worker.core.scoring import BatchScorer


@dataclass(frozen=True)
class CoreResult:
    scorer: Figure
    """events/s through BatchScorer.score"""
    bare: Figure
    """rows/s through pipeline.predict_proba on prebuilt frames"""
    stages_ms: dict[str, float]
    """best time of each stage on one batch"""
    sweep: dict[int, float]
    """batch size -> events/s through BatchScorer.score (best of a few passes)"""
    scorer_cpu: Figure
    """µs of process CPU (every thread) per event through BatchScorer.score"""
    bare_cpu: Figure
    """µs of process CPU (every thread: the model's own pools too) per row, predict_proba"""


def input_events(values: Sequence[bytes], keys: Sequence[bytes]) -> list[InputEvent]:
    return [
        InputEvent(value, key, "events", i % 4, i // 4, 1_735_689_600_000 + i)
        for i, (value, key) in enumerate(zip(values, keys, strict=True))
    ]


def _rate(work: Callable[[], object], count: int, cpu: list[float] | None = None) -> float:
    """Events per wall second; with ``cpu``, also appends the µs of process CPU per event
    (``time.process_time``: user + system of every thread of this process)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    work()
    wall = time.perf_counter() - started
    if cpu is not None:
        cpu.append((time.process_time() - cpu_started) / count * 1e6)
    return count / wall


def _best_ms(
    work: Callable[[], object], tries: int, clock: Callable[[], float] = time.perf_counter
) -> float:
    best = float("inf")
    for _ in range(tries):
        started = clock()
        work()
        best = min(best, clock() - started)
    return best * 1000


def measure(
    bundle: Bundle, events: list[InputEvent], batch: int, repeats: int, sweep: Sequence[int]
) -> CoreResult:
    scorer = BatchScorer(bundle)
    batches = [events[i : i + batch] for i in range(0, len(events), batch)]
    features = bundle.manifest.features
    frames = [events_to_frame([orjson.loads(e.value or b"") for e in b], features) for b in batches]

    def score_all() -> None:
        for b in batches:
            scorer.score(b)

    def predict_all() -> None:
        for frame in frames:
            bundle.pipeline.predict_proba(frame)

    score_all()  # warm up
    predict_all()
    scored: list[float] = []
    bare: list[float] = []
    scored_cpu: list[float] = []
    bare_cpu: list[float] = []
    for _ in range(repeats):  # interleaved, so both see the same neighbours
        scored.append(_rate(score_all, len(events), scored_cpu))
        bare.append(_rate(predict_all, len(events), bare_cpu))
    return CoreResult(
        Figure.of(scored, "events/s"),
        Figure.of(bare, "rows/s"),
        stages(scorer, batches[0], tries=max(3, 10 * repeats)),
        {size: _sweep_rate(scorer, events, size) for size in sweep},
        Figure.of(scored_cpu, "µs/event"),
        Figure.of(bare_cpu, "µs/row"),
    )


def stages(scorer: BatchScorer, batch: list[InputEvent], tries: int) -> dict[str, float]:
    """Best time of each step of ``BatchScorer.score`` on one batch, in ms: the struct
    decode straight into the model frame (``worker.core.json_columns``) when the bundle
    takes it, else the general path's decode and check."""
    bundle = scorer.bundle
    columns = scorer._columns
    decoded, positions, _ = scorer._decode_all(batch)
    checked = check_batch(decoded, bundle.manifest.features)
    steps: dict[str, Callable[[], object]] = {
        "decode (orjson)": lambda: scorer._decode_all(batch),
        "validate + frame": lambda: check_batch(decoded, bundle.manifest.features),
    }
    if columns is not None:
        verdict = scorer._verdict_at(batch)
        held = columns.read(batch, verdict)
        assert held is not None, "the benchmark's events take the fast path"
        checked = held.checked
        steps = {"decode + validate + frame (msgspec)": lambda: columns.read(batch, verdict)}
    outputs = bundle.predict_model_frame(checked.frame)
    valid = [decoded[i] for i in checked.accepted]
    indices = [positions[i] for i in checked.accepted]
    steps["predict"] = lambda: bundle.predict_model_frame(checked.frame)
    steps["encode records"] = lambda: scorer._encode(batch, indices, valid, outputs)
    steps["whole score()"] = lambda: scorer.score(batch)
    return {name: _best_ms(step, tries) for name, step in steps.items()}


def _sweep_rate(scorer: BatchScorer, events: list[InputEvent], size: int) -> float:
    count = min(len(events), max(size * 4, 200))
    batches = [events[i : i + size] for i in range(0, count, size)]

    def score_all() -> None:
        for b in batches:
            scorer.score(b)

    return max(_rate(score_all, count) for _ in range(3))


def decode_costs_us(bundle: Bundle, values: Sequence[bytes], tries: int) -> dict[str, float]:
    """Best µs per event of the scorer's decode step (``BatchScorer._decode_all``, loop and
    checks included) on one batch: the events as JSON, and the same events as Avro in the
    wire format (``examples.wire``'s schema, the writer schema already fetched).
    CPU time of this thread (``time.thread_time``): a loaded machine moves it little."""
    import json

    from examples.wire import SCHEMA_V1, avro_value
    from worker.core.formats import ValueFormat, WireDecoder, WriterSchema

    events = [orjson.loads(v) for v in values]
    events = [e for e in events if isinstance(e, dict) and "ts" in e]
    decoder = WireDecoder(ValueFormat.AVRO)
    decoder.learn(WriterSchema(1, "AVRO", json.dumps(SCHEMA_V1)))
    keys = [b""] * len(events)
    plain = input_events([orjson.dumps(e) for e in events], keys)
    wire = input_events([avro_value(1, SCHEMA_V1, e) for e in events], keys)
    as_json, as_avro = BatchScorer(bundle), BatchScorer(bundle, decoder=decoder)
    per_event, cpu = 1000 / len(events), time.thread_time
    return {
        "json": _best_ms(lambda: as_json._decode_all(plain), tries, cpu) * per_event,
        "avro": _best_ms(lambda: as_avro._decode_all(wire), tries, cpu) * per_event,
    }
