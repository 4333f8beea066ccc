"""Helpers for integration tests against a real Kafka broker; no pytest in here.

Polling and topics come from the shared `harness` (re-exported here for the tests).
`LocalBroker` controls the broker that `scripts/kafka-local` runs (SIGTERM, SIGKILL,
restart). The functions create topics, produce (optionally in transactions), read topics
back and look offsets up. Every wait polls against a deadline; nothing sleeps to synchronise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from harness.polling import poll_until
from harness.topics import (
    QUIET,
    create_topic,
    delete_topics,
    is_reachable,
    partition_count,
    unique_topic,
)

# The integration tier imports these from here; they live in the shared harness.
__all__ = [
    "QUIET",
    "create_topic",
    "delete_topics",
    "is_reachable",
    "partition_count",
    "poll_until",
    "unique_topic",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_LOCAL = REPO_ROOT / "scripts" / "kafka-local"
Isolation = Literal["read_committed", "read_uncommitted"]
# the `topic_factory` fixture: (partitions=1, config=None) -> topic name
TopicFactory = Callable[..., str]


class BrokerError(RuntimeError):
    """The local broker could not be started, stopped or reached."""


@dataclass(frozen=True)
class Record:
    """One consumed message, detached from librdkafka."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


# --- the local broker --------------------------------------------------------------------


def _normalise(bootstrap: str) -> set[str]:
    return {a.strip().replace("localhost:", "127.0.0.1:") for a in bootstrap.split(",")}


def process_gone(pid: int) -> bool:
    """True once no thread of `pid` runs: it has exited, or every thread is a zombie.

    After a SIGKILL the JVM's main thread turns zombie while other threads still hold its
    sockets open, and some containers never reap zombies: so look at every thread.
    """
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return True
    for thread in threads:
        try:
            stat = Path(f"/proc/{pid}/task/{thread}/stat").read_text()
        except OSError:
            continue
        if stat.rsplit(") ", 1)[-1][:1] not in ("Z", "X"):
            return False
    return True


def live_pid(pid_file: Path) -> int | None:
    """The pid written in ``pid_file`` while that process lives (`process_gone`), else None."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return None if process_gone(pid) else pid


def kafka_local(
    *args: str, env: Mapping[str, str], timeout_s: float
) -> subprocess.CompletedProcess[str]:
    """Run ``scripts/kafka-local ARGS`` (``cluster ...`` for the cluster), output captured."""
    return subprocess.run(
        [str(KAFKA_LOCAL), *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def kafka_local_status(*args: str, env: Mapping[str, str]) -> dict[str, str]:
    """The ``key=value`` lines of ``scripts/kafka-local [ARGS] status``."""
    out = kafka_local(*args, "status", env=env, timeout_s=60).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


class LocalBroker:
    """The broker run by `scripts/kafka-local`, addressed by its environment (KAFKA_PORT...)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        info = self._status()
        self.bootstrap = info["bootstrap"]
        self.pid_file = Path(info["pid_file"])
        self.log_file = Path(info["log_file"])

    def _run(self, command: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
        return kafka_local(command, env=self.env, timeout_s=timeout_s)

    def _status(self) -> dict[str, str]:
        return kafka_local_status(env=self.env)

    def up(self, timeout_s: float = 600) -> str:
        """Start the broker (a no-op when it runs) and return its bootstrap address."""
        done = self._run("up", timeout_s)
        if done.returncode != 0:
            raise BrokerError(f"scripts/kafka-local up failed: {done.stderr.strip()}")
        return self.bootstrap

    def restart(self, timeout_s: float = 600) -> str:
        """Stop the broker if it runs (SIGTERM), start it and wait until it answers."""
        if self.pid is not None:
            self.down()
        return self.up(timeout_s)

    def down(self, timeout_s: float = 120) -> None:
        """Stop the broker cleanly (SIGTERM, then SIGKILL after KAFKA_STOP_TIMEOUT_S)."""
        done = self._run("down", timeout_s)
        if done.returncode != 0:
            raise BrokerError(f"scripts/kafka-local down failed: {done.stderr.strip()}")

    @property
    def pid(self) -> int | None:
        """The broker's pid until its process is gone (see `process_gone`), else None."""
        pid = live_pid(self.pid_file)
        if pid is None:
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if not cmdline or b"kafka.Kafka" in cmdline else None  # empty while exiting

    def manages(self, bootstrap: str) -> bool:
        """True when `bootstrap` is this broker's address and the broker is alive."""
        return self.pid is not None and _normalise(bootstrap) == _normalise(self.bootstrap)

    def terminate(self, timeout_s: float = 60) -> None:
        """SIGTERM (controlled shutdown) and wait until the process is gone."""
        self._signal(signal.SIGTERM, timeout_s)

    def kill(self, timeout_s: float = 30) -> None:
        """SIGKILL (a crash: no controlled shutdown, no flush) and wait until it is gone."""
        self._signal(signal.SIGKILL, timeout_s)

    def _signal(self, sig: signal.Signals, timeout_s: float) -> None:
        pid = self.pid
        if pid is None:
            raise BrokerError(f"no local broker is running (pid file {self.pid_file})")
        os.kill(pid, sig)
        poll_until(f"broker pid {pid} to exit after {sig.name}", timeout_s, self._gone(pid))

    def _gone(self, pid: int) -> Callable[[], bool | None]:
        return lambda: True if self.pid != pid else None


# --- producing -------------------------------------------------------------------------------


def _producer_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, **QUIET, **extra}


def _send(
    producer: Producer, topic: str, values: Sequence[bytes], keys: Sequence[bytes] | None
) -> list[KafkaError]:
    """Produce every value (with its key) and return the delivery errors."""
    if keys is not None and len(keys) != len(values):
        raise ValueError(f"{len(keys)} keys for {len(values)} values")
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            errors.append(err)

    for i, value in enumerate(values):
        key = None if keys is None else keys[i]
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                producer.poll(0.1)
    return errors


def produce(
    bootstrap: str,
    topic: str,
    values: Sequence[bytes],
    keys: Sequence[bytes] | None = None,
    *,
    transactional: bool = False,
    deadline_s: float = 60,
) -> None:
    """Produce `values` idempotently; with `transactional`, inside one committed transaction."""
    if transactional:
        with transactional_producer(bootstrap) as producer:
            send_transaction(producer, topic, values, keys, commit=True, deadline_s=deadline_s)
        return
    producer = Producer(_producer_config(bootstrap, **{"enable.idempotence": True}))
    try:
        errors = _send(producer, topic, values, keys)
        left = producer.flush(deadline_s)
    finally:
        producer.close()
    if errors or left:
        raise KafkaException(errors[0] if errors else f"{left} messages not delivered to {topic}")


@contextmanager
def transactional_producer(
    bootstrap: str, transactional_id: str | None = None, deadline_s: float = 60
) -> Iterator[Producer]:
    """A producer with `init_transactions()` done; closed on exit."""
    txn_id = transactional_id or unique_topic("it-txn")
    producer = Producer(_producer_config(bootstrap, **{"transactional.id": txn_id}))
    try:
        producer.init_transactions(deadline_s)
        yield producer
    finally:
        producer.close()


def send_transaction(
    producer: Producer,
    topic: str,
    values: Sequence[bytes],
    keys: Sequence[bytes] | None = None,
    *,
    commit: bool = True,
    deadline_s: float = 60,
) -> None:
    """One transaction holding `values`: committed, or (commit=False) flushed then aborted."""
    producer.begin_transaction()
    errors = _send(producer, topic, values, keys)
    if producer.flush(deadline_s) or errors:
        producer.abort_transaction(deadline_s)
        raise KafkaException(errors[0] if errors else f"messages to {topic} not delivered")
    if commit:
        producer.commit_transaction(deadline_s)
    else:
        producer.abort_transaction(deadline_s)


# --- consuming and offsets ---------------------------------------------------------------


def _partitions(bootstrap: str, topic: str) -> list[int]:
    count = partition_count(bootstrap, topic)
    if count is None:
        raise KafkaException(f"topic {topic} does not exist")
    return list(range(count))


def consume_all(
    bootstrap: str,
    topic: str,
    expected_count: int | None = None,
    *,
    isolation_level: Isolation = "read_committed",
    deadline_s: float = 60,
) -> list[Record]:
    """Read `topic` from the beginning of every partition (no consumer group).

    Stops once every partition reported its end and at least `expected_count` records
    (when given) were read, so duplicates up to the end are included. TimeoutError after
    `deadline_s`, naming how many records were read.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_topic("it-reader"),  # required by librdkafka; never joined
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "isolation.level": isolation_level,
            **QUIET,
        }
    )
    partitions = _partitions(bootstrap, topic)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    records: list[Record] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + deadline_s
    try:
        while len(at_end) < len(partitions) or len(records) < (expected_count or 0):
            if time.monotonic() >= deadline:
                want = f" of {expected_count}" if expected_count is not None else ""
                raise TimeoutError(
                    f"read {len(records)}{want} records from {topic} in {deadline_s:g}s, "
                    f"at the end of {len(at_end)} of {len(partitions)} partitions"
                )
            _take(consumer.consume(1000, timeout=0.2), records, at_end)
    finally:
        consumer.close()
    return records


def _take(messages: Sequence[Message], records: list[Record], at_end: set[int]) -> None:
    for msg in messages:
        err = msg.error()
        if err is not None and err.code() != KafkaError._PARTITION_EOF:
            raise KafkaException(err)
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        if topic is None or partition is None or offset is None:
            raise KafkaException(f"consumed an event without a position: {err}")
        if err is not None:  # end of partition
            at_end.add(partition)
        else:
            at_end.discard(partition)
            records.append(Record(topic, partition, offset, msg.key(), msg.value()))


def end_offsets(
    bootstrap: str,
    topic: str,
    isolation_level: Isolation = "read_uncommitted",
    deadline_s: float = 30,
) -> dict[int, int]:
    """Partition -> end offset: the high watermark, or for read_committed the last stable offset."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_topic("it-offsets"),  # required by librdkafka; never joined
            "isolation.level": isolation_level,
            **QUIET,
        }
    )

    def ask() -> dict[int, int]:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), 10, cached=False)[1]
            for p in _partitions(bootstrap, topic)
        }

    try:
        return poll_until(f"end offsets of {topic}", deadline_s, ask)
    finally:
        consumer.close()


def settled(bootstrap: str, topic: str, deadline_s: float = 30) -> dict[int, int]:
    """Partition -> end offset, once no partition of ``topic`` has a transaction still
    open or committed without its markers (last stable offset == high watermark): a
    worker's or `publish`'s last commit is answered before its markers are written."""

    def ask() -> dict[int, int] | None:
        stable = end_offsets(bootstrap, topic, "read_committed", deadline_s)
        ends = end_offsets(bootstrap, topic, "read_uncommitted", deadline_s)
        return ends if stable == ends else None

    return poll_until(f"{topic} settled", deadline_s, ask)


def group_committed(
    bootstrap: str, group: str, topic: str, partitions: Sequence[int], timeout_s: float = 5
) -> dict[int, int]:
    """Partition -> offset committed by ``group`` (partitions without one are left out).

    Read by a consumer that never joins the group, not by an admin client: librdkafka's
    admin ListConsumerGroupOffsets dies of SIGSEGV on a NOT_COORDINATOR answer (as right
    after a broker restart), librdkafka#5040. The consumer is read_committed, so a
    partition whose offsets a transaction holds makes this raise KafkaException
    (_TIMED_OUT) rather than answer with the pending offset.
    """
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False, **QUIET}
    )
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout_s)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in found if tp.offset >= 0}


def committed_offsets(
    bootstrap: str, group: str, topic: str, deadline_s: float = 30
) -> dict[int, int]:
    """Partition -> offset committed by `group` on `topic`; partitions without one are left out."""

    def ask() -> dict[int, int]:  # retried: the group coordinator may still be loading
        return group_committed(bootstrap, group, topic, _partitions(bootstrap, topic), 10)

    return poll_until(f"offsets committed by {group} on {topic}", deadline_s, ask)


def commit_offsets(
    bootstrap: str, group: str, topic: str, offsets: Mapping[int, int], deadline_s: float = 30
) -> None:
    """Commit `offsets` (partition -> next offset to read) for `group`, as a consumer does."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False, **QUIET}
    )
    tps = [TopicPartition(topic, p, o) for p, o in offsets.items()]

    def attempt() -> bool:  # retried: the group coordinator may still be loading
        failed = [tp for tp in consumer.commit(offsets=tps, asynchronous=False) or [] if tp.error]
        if failed:
            raise KafkaException(failed[0].error)
        return True

    try:
        poll_until(f"commit of {group} offsets on {topic}", deadline_s, attempt)
    finally:
        consumer.close()
