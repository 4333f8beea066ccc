"""A paced producer: the demo events at a fixed offered rate, for the latency measurement.

Events are due at ``start + i / rate``; every ~1 ms tick (``poll(0.001)``, which also
serves delivery reports) the ones due are produced. Each event's Kafka timestamp is its
CreateTime, set by the client when ``produce`` is called, i.e. when it was due (to within
a tick). Run as ``python -m bench.pace ...``; one JSON line on stdout at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import orjson
from confluent_kafka import KafkaError, Producer

from bench.common import events


def run(args: argparse.Namespace) -> int:
    values, keys = events(args.count, seed=args.seed)
    producer = Producer(
        {"bootstrap.servers": args.bootstrap, "linger.ms": args.linger_ms, "acks": "all",
         "enable.idempotence": True}
    )  # fmt: skip
    failed: list[KafkaError] = []

    def report(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            failed.append(err)

    sent, behind = 0, 0
    start = time.monotonic()
    while sent < args.count:
        due = min(args.count, int((time.monotonic() - start) * args.rate) + 1)
        behind = max(behind, due - sent)
        while sent < due:
            producer.produce(args.topic, values[sent], keys[sent], on_delivery=report)
            sent += 1
        producer.poll(0.001)
    left = producer.flush(30)
    took = time.monotonic() - start
    result = {"event": "done", "count": sent, "seconds": took, "max_behind": behind,
              "undelivered": left, "failed": len(failed)}  # fmt: skip
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0 if not left and not failed else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pace", description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--rate", type=float, required=True, help="events per second")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--linger-ms", type=int, default=5, help="the librdkafka default")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
