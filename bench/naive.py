"""The baseline: the per-message worker users would otherwise write.

One message at a time: ``poll``, ``json.loads``, a one-row DataFrame of the features,
``predict_proba`` of the bundle's pipeline, ``json.dumps`` of a small record, ``produce``;
offsets auto-committed. Measured from the first message consumed to the last prediction
delivered (``flush``). Run as ``python -m bench.naive ...`` (one JSON line on stdout).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import orjson
import pandas as pd
from confluent_kafka import Consumer, Producer

from bench.child import Child, running
from bench.common import PYTHON, BenchError, unique
from bench.e2e import Setup
from model_bundles.bundle import load_bundle


def measure(setup: Setup, bundle: Path) -> float:
    """Events per second of one naive run over ``setup``'s events (fresh topics)."""
    kafka = setup.kafka
    source, sink = kafka.topic("naive-in"), kafka.topic("naive-out")
    try:
        kafka.load(source, setup.values, setup.keys)
        args = [
            PYTHON, "-m", "bench.naive", "--bootstrap", kafka.bootstrap, "--bundle", str(bundle),
            "--input", source, "--output", sink, "--group", unique("naive"),
            "--max-events", str(len(setup.values)),
        ]  # fmt: skip
        with running(Child(args, setup.workdir)) as child:
            code = child.wait(setup.deadline_s)
        if code != 0:
            raise BenchError(f"naive worker exited {code}: {child.stderr()[-2000:]}")
        done = orjson.loads(child.stdout().strip().splitlines()[-1])
        return float(done["count"]) / (float(done["end"]) - float(done["first"]))
    finally:
        kafka.cleanup()


def run(args: argparse.Namespace) -> int:
    bundle = load_bundle(args.bundle)
    pipeline = bundle.pipeline
    names = [f.name for f in bundle.features]
    labels = [str(c) for c in pipeline.classes_]
    consumer = Consumer(
        {"bootstrap.servers": args.bootstrap, "group.id": args.group,
         "auto.offset.reset": "earliest"}
    )  # fmt: skip
    producer = Producer({"bootstrap.servers": args.bootstrap})
    consumer.subscribe([args.input])
    done, first = 0, None
    deadline = time.monotonic() + args.deadline_s
    while done < args.max_events and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        value = None if msg is None or msg.error() is not None else msg.value()
        if msg is None or value is None:
            continue
        first = first if first is not None else time.time()
        event = json.loads(value)
        row = pd.DataFrame([{name: event.get(name) for name in names}])
        scores = pipeline.predict_proba(row)[0]
        best = max(range(len(labels)), key=lambda i: scores[i])
        record = {"event_id": event.get("event_id"), "prediction": labels[best],
                  "scores": dict(zip(labels, scores.tolist(), strict=True))}  # fmt: skip
        producer.produce(args.output, json.dumps(record).encode(), msg.key())
        producer.poll(0)
        done += 1
    left = producer.flush(30)
    end = time.time()
    consumer.close()
    sys.stdout.write(
        json.dumps({"event": "done", "count": done - left, "first": first, "end": end})
    )
    sys.stdout.write("\n")
    return 0 if done == args.max_events and not left else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.naive", description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--max-events", type=int, required=True)
    parser.add_argument("--deadline-s", type=float, default=600)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
