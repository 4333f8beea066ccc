"""The ceiling: consume -> produce of the same bytes, no parsing, shaped like the worker.

The worker's own client settings (``WorkerSettings.consumer_config`` and
``producer_config``, ``--kafka-property`` included) and the same batching: up to
batches formed by ``worker.kafka.clients.gather`` (``--max-batch-events``, ``--max-batch-age-ms``),
then, per batch, either one transaction holding the messages and the consumed offsets
(``eos``) or produce, wait for every delivery, commit the offsets (``alo``).

With ``--bundle B`` each batch also goes through the worker's scoring core
(``worker.core.scoring.BatchScorer``, on the worker's own ``InputEvent``s) and the
prediction records are produced instead of the input's bytes, with nothing else the
worker does around it (no headers, dead letters, metrics, drift, positions, watchdog):
the least a worker built on this core can spend per event.

Run as ``python -m bench.passthrough ...`` (one JSON line on stdout per stage), so the
measurement, like the worker's, happens in a process of its own.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from worker.kafka.clients import gather, to_input_events

SLOW_DELIVERY_S = 0.05
"""A batch delivery (a transaction, exactly-once) counted slow: the worker's
``scoring_delivery_duration_seconds`` bucket of the same bound."""


def _say(event: str, **fields: Any) -> None:
    sys.stdout.write(orjson.dumps({"event": event, "ts": time.time(), **fields}).decode() + "\n")
    sys.stdout.flush()


def _clients(args: argparse.Namespace) -> tuple[Consumer, Producer]:
    """The worker's own client configuration (``WorkerSettings``), for the same group."""
    from worker.live.settings import WorkerSettings

    settings = WorkerSettings(
        bundle=".",
        bootstrap_servers=args.bootstrap,
        input_topic=args.input,
        output_topic=args.output,
        group_id=args.group,
        instance_id="passthrough",
        delivery="exactly-once" if args.mode == "eos" else "at-least-once",
        kafka=dict(p.split("=", 1) for p in args.kafka_property),
    )
    # The worker looks its start offsets up itself and sets auto.offset.reset to error;
    # the passthrough's group is new on a new topic, so it reads from the beginning.
    consumer = Consumer({**settings.consumer_config(), "auto.offset.reset": "earliest"})
    return consumer, Producer(settings.producer_config())


def _produce(producer: Producer, topic: str, messages: Sequence[Any]) -> None:
    for m in messages:
        while True:
            try:
                producer.produce(topic, m.value(), m.key())
                break
            except BufferError:
                producer.poll(0.05)


class _Scoring:
    """The scoring core in the passthrough's loop: a batch's messages -> (record, key)."""

    def __init__(self, bundle: str) -> None:
        from model_bundles.bundle import load_bundle
        from worker.core.scoring import BatchScorer

        self._scorer = BatchScorer(load_bundle(Path(bundle)))
        gc.freeze()  # as the worker does once loaded (``worker.cli.live``)

    def records(self, messages: Sequence[Any]) -> list[tuple[bytes, bytes | None]]:
        events = to_input_events(messages).events
        scored = self._scorer.score(events)
        return [(r, events[i].key) for r, i in zip(scored.records, scored.indices, strict=True)]


def _produce_records(
    producer: Producer, topic: str, records: Sequence[tuple[bytes, bytes | None]]
) -> None:
    for value, key in records:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)


def _offsets(messages: Sequence[Any]) -> list[TopicPartition]:
    nxt: dict[tuple[str, int], int] = {}
    for m in messages:
        key = (m.topic(), m.partition())
        nxt[key] = max(nxt.get(key, 0), m.offset() + 1)
    return [TopicPartition(t, p, o) for (t, p), o in nxt.items()]


def _deliver(
    args: argparse.Namespace,
    consumer: Consumer,
    producer: Producer,
    batch: list[Any],
    records: list[tuple[bytes, bytes | None]] | None = None,
) -> None:
    """Deliver ``batch``: its messages' bytes, or ``records`` (the scored batch's)."""
    if args.mode == "eos":
        producer.begin_transaction()
        if records is None:
            _produce(producer, args.output, batch)
        else:
            _produce_records(producer, args.output, records)
        meta = consumer.consumer_group_metadata()
        producer.send_offsets_to_transaction(_offsets(batch), meta, 30)
        producer.commit_transaction(30)
        return
    if records is not None:
        _produce_records(producer, args.output, records)
    else:
        _produce(producer, args.output, batch)
    if producer.flush(30):
        raise KafkaException("deliveries outstanding after 30 s")
    consumer.commit(offsets=_offsets(batch), asynchronous=False)


def run(args: argparse.Namespace) -> int:
    consumer, producer = _clients(args)
    scoring = _Scoring(args.bundle) if args.bundle else None
    if args.mode == "eos":
        producer.init_transactions(30)
    consumer.subscribe(
        [args.input], on_assign=lambda _c, tps: _say("assigned", partitions=len(tps))
    )
    done, first, waited_s, delivering_s = 0, None, 0.0, 0.0
    deliveries, slow = 0, 0  # batches, and those whose delivery took over SLOW_DELIVERY_S
    deadline = time.monotonic() + args.deadline_s
    while done < args.max_events:
        if time.monotonic() > deadline:
            _say("timeout", count=done)
            return 1
        limit = min(args.max_batch_events, args.max_events - done)
        started = time.perf_counter()
        polled = gather(consumer.consume, limit, args.max_batch_age_ms / 1000)
        for m in polled:
            if m.error() is not None:  # say an offset reset refused: never spin silently
                _say("error", error=str(m.error()))
                return 1
        batch = polled
        if not batch:
            continue
        if first is None:
            first = time.time()
        else:
            waited_s += time.perf_counter() - started
        records = scoring.records(batch) if scoring is not None else None
        started = time.perf_counter()  # the delivery alone, as the worker times it
        _deliver(args, consumer, producer, batch, records)
        took = time.perf_counter() - started
        delivering_s += took
        deliveries += 1
        slow += took > SLOW_DELIVERY_S
        done += len(batch)
    _say("done", count=done, first_consume=first, last_commit=time.time(),
         consuming_s=waited_s, delivering_s=delivering_s, deliveries=deliveries,
         slow_deliveries=slow)  # fmt: skip
    consumer.close()
    producer.flush(30)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.passthrough", description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--mode", choices=["eos", "alo"], required=True)
    parser.add_argument("--max-events", type=int, required=True)
    parser.add_argument("--max-batch-events", type=int, default=1000)
    parser.add_argument("--max-batch-age-ms", type=int, default=5)
    parser.add_argument("--kafka-property", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--deadline-s", type=float, default=600)
    parser.add_argument("--bundle", help="score each batch with this bundle's scoring core")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
