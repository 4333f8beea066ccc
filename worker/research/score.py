"""The research path over files: JSONL events in, JSONL prediction records out.

With a wire decoder (``--value-format avro|json-schema``) the input is a recording
(``worker.core.recording``): its values are the exact bytes the topic held, its schema lines
the writer schemas, and each record carries its ``source`` like the live worker's, so the
records are the live records byte for byte, with no registry (``schemas`` answers only for
ids the recording lacks).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson

from model_bundles.bundle import Bundle
from schemas.errors import BadInputError
from worker.core.counts import counted
from worker.core.events import InputEvent
from worker.core.formats import KnownSchemas, SchemaSource, WireDecoder, WriterSchema, learn_all
from worker.core.recording import encode_bytes, read_recording_items
from worker.core.scoring import BatchScorer
from worker.replay.replay import input_event

MAX_REPORTED_REJECTS = 20


@dataclass
class ScoreSummary:
    scored: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    unknown_categories: Counter[str] = field(default_factory=Counter)

    def line(self, output: Path) -> str:
        rejects = sum(self.rejected.values())
        detail = ", ".join(f"{r} {n}" for r, n in sorted(self.rejected.items()))
        text = f"scored {counted(self.scored, 'event')}, rejected {rejects}"
        text += f" ({detail})" if detail else ""
        if self.unknown_categories:
            unknown = ", ".join(f"{k} {n}" for k, n in sorted(self.unknown_categories.items()))
            text += f", unknown categories scored: {unknown}"
        return text + f" -> {output}"


def score_file(
    bundle: Bundle,
    input_path: Path,
    output: Path,
    rejects: Path | None,
    batch_size: int,
    id_field: str | None,
    report: Callable[[str], None],
    decoder: WireDecoder | None = None,
    schemas: SchemaSource | None = None,
) -> ScoreSummary:
    """Score every line; each bad line is reported with its number and counted.

    ``decoder``: the input is a recording of wire-format values (see the module)."""
    scorer = BatchScorer(
        bundle, id_field=id_field, include_source=decoder is not None, decoder=decoder
    )
    summary = ScoreSummary()
    try:
        source = input_path.open("rb")
    except OSError as exc:
        raise BadInputError(f"cannot read {input_path}: {exc.strerror}") from None
    with source, output.open("wb") as out, _maybe_open(rejects) as rejects_out:
        if decoder is None:
            batches = _batches(source, input_path.name, batch_size)
        else:
            batches = _recorded_batches(source, str(input_path), batch_size, decoder, schemas)
        for batch in batches:
            result = scorer.score(batch)
            out.writelines(record + b"\n" for record in result.records)
            summary.scored += len(result.records)
            summary.unknown_categories.update(result.unknown_categories)
            for rejected in result.rejected:
                event = batch[rejected.index]
                reason = rejected.rejection.reason.value
                summary.rejected[reason] += 1
                if sum(summary.rejected.values()) <= MAX_REPORTED_REJECTS:
                    where = f"{input_path}:{event.offset}"  # the line number
                    if decoder is not None:  # a recording: where the message was
                        where = f"{input_path}: {event.topic}:{event.partition}:{event.offset}"
                    report(f"{where}: {reason}: {rejected.rejection.detail}")
                if rejects_out is not None:
                    detail = rejected.rejection.detail
                    rejects_out.write(_reject_line(event, reason, detail, decoder is not None))
    hidden = sum(summary.rejected.values()) - MAX_REPORTED_REJECTS
    if hidden > 0:
        report(f"... and {hidden} more rejected lines")
    return summary


def _batches(source: IO[bytes], name: str, size: int) -> Iterator[list[InputEvent]]:
    batch: list[InputEvent] = []
    for number, line in enumerate(source, start=1):
        value = line.rstrip(b"\r\n")
        if not value.strip():
            continue
        batch.append(InputEvent(value=value, topic=name, partition=0, offset=number))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _recorded_batches(
    source: IO[bytes],
    name: str,
    size: int,
    decoder: WireDecoder,
    schemas: SchemaSource | None,
) -> Iterator[list[InputEvent]]:
    """Batches of a recording's messages; its schema lines teach the decoder, ids it lacks
    are asked of ``schemas`` (RegistryUnavailable propagates)."""
    recorded: dict[int, WriterSchema] = {}
    fallback = KnownSchemas(recorded, schemas)
    batch: list[InputEvent] = []

    def ready(events: list[InputEvent]) -> list[InputEvent]:
        learn_all(decoder, fallback, decoder.wanted(e.value for e in events))
        return events

    for item in read_recording_items(source, name):
        if isinstance(item, WriterSchema):
            recorded[item.schema_id] = item
            decoder.learn(item)
            continue
        batch.append(input_event(item))
        if len(batch) >= size:
            yield ready(batch)
            batch = []
    if batch:
        yield ready(batch)


def _reject_line(event: InputEvent, reason: str, detail: str, recorded: bool) -> bytes:
    """One ``--rejects`` line: where the event was, why, and its value exactly (a value
    that is not UTF-8 as the recording's ``{"b64": ...}``, never a lossy decoding).

    Where: the line number in a JSONL events file; in a recording, the message's topic,
    partition and offset (its position in Kafka, which the recording keeps: issue 28,
    the offset was written as ``line``)."""
    where: dict[str, object] = (
        {"topic": event.topic, "partition": event.partition, "offset": event.offset}
        if recorded
        else {"line": event.offset}
    )
    body = {"reason": reason, "detail": detail, "value": encode_bytes(event.value)}
    return orjson.dumps(where | body) + b"\n"


def _maybe_open(path: Path | None) -> AbstractContextManager[IO[bytes] | None]:
    return path.open("wb") if path is not None else nullcontext()
