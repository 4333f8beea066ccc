"""A transaction that nobody finishes, and Kafka's own `kafka-transactions.sh` to abort it.

`open_transaction_forever` leaves a transaction open on one partition for as long as the
block runs (a transaction timeout of 15 minutes, the broker's maximum): for readers and
for the worker it is indistinguishable from a hanging one. `kafka_transactions` runs
the TransactionsCommand of the local broker's own jars (what `kafka-transactions.sh` runs).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import Producer
from kafka_broker import QUIET, REPO_ROOT, unique_topic


@contextmanager
def open_transaction_forever(bootstrap: str, topic: str, partition: int) -> Iterator[int]:
    """Yields the offset of the open transaction's first message on ``topic:partition``."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": unique_topic("it-hanging"),
            "transaction.timeout.ms": 900_000,
            **QUIET,
        }
    )
    offsets: list[int] = []
    producer.init_transactions(60)
    producer.begin_transaction()
    producer.produce(
        topic,
        b"never committed",
        partition=partition,
        on_delivery=lambda _e, m: offsets.append(m.offset()),
    )
    assert producer.flush(60) == 0 and offsets, "the open transaction's message was not written"
    try:
        yield offsets[0]
    finally:
        producer.abort_transaction(60)  # harmless if an operator aborted it meanwhile
        producer.close()


def kafka_transactions(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `kafka-transactions.sh ARGS` with the local broker's jars."""
    version = os.environ.get("KAFKA_VERSION", "4.3.1")
    cache = Path(os.environ.get("KAFKA_CACHE_DIR", REPO_ROOT / ".cache" / "kafka"))
    java = shutil.which("java") or "java"
    command = [java, "-cp", f"{cache / version / 'libs'}/*"]
    command += ["org.apache.kafka.tools.TransactionsCommand", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
