"""The ceiling: consume -> produce of the same bytes, no parsing, shaped like the worker.

The worker's own client settings (``WorkerSettings.consumer_config`` and
``producer_config``, ``--kafka-property`` included) and the same batching: up to
batches formed by ``worker.kafka.clients.gather`` (``--max-batch-events``, ``--max-batch-age-ms``),
then, per batch, either one transaction holding the messages and the consumed offsets
(``eos``) or produce, wait for every delivery, commit the offsets (``alo``).

Run as ``python -m bench.passthrough ...`` (one JSON line on stdout per stage), so the
measurement, like the worker's, happens in a process of its own.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from worker.kafka.clients import gather

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


def _offsets(messages: Sequence[Any]) -> list[TopicPartition]:
    nxt: dict[tuple[str, int], int] = {}
    for m in messages:
        key = (m.topic(), m.partition())
        nxt[key] = max(nxt.get(key, 0), m.offset() + 1)
    return [TopicPartition(t, p, o) for (t, p), o in nxt.items()]


def _deliver(
    args: argparse.Namespace, consumer: Consumer, producer: Producer, batch: list[Any]
) -> None:
    if args.mode == "eos":
        producer.begin_transaction()
        _produce(producer, args.output, batch)
        meta = consumer.consumer_group_metadata()
        producer.send_offsets_to_transaction(_offsets(batch), meta, 30)
        producer.commit_transaction(30)
        return
    _produce(producer, args.output, batch)
    if producer.flush(30):
        raise KafkaException("deliveries outstanding after 30 s")
    consumer.commit(offsets=_offsets(batch), asynchronous=False)


def run(args: argparse.Namespace) -> int:
    consumer, producer = _clients(args)
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
        started = time.perf_counter()
        _deliver(args, consumer, producer, batch)
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
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
