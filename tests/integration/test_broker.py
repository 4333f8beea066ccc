"""The test broker itself: topics are created as asked, and transactions are read exactly once."""

from __future__ import annotations

from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient
from kafka_broker import (
    QUIET,
    TopicFactory,
    consume_all,
    end_offsets,
    partition_count,
    send_transaction,
    transactional_producer,
    unique_topic,
)


def test_topic_is_created_with_its_partitions(bootstrap: str, topic_factory: TopicFactory) -> None:
    topic = topic_factory(partitions=4)

    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic=topic, timeout=10)

    partitions = meta.topics[topic].partitions
    assert sorted(partitions) == [0, 1, 2, 3]
    assert all(p.leader in meta.brokers and p.replicas == [p.leader] for p in partitions.values())


def test_topics_are_not_created_on_first_use(bootstrap: str) -> None:
    topic = unique_topic("it-missing")
    reports: list[KafkaError | None] = []
    producer = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 2000, **QUIET})
    producer.produce(topic, b"x", on_delivery=lambda err, _msg: reports.append(err))
    producer.flush(10)
    producer.close()

    assert len(reports) == 1 and reports[0] is not None  # delivery failed
    assert partition_count(bootstrap, topic) is None


def test_read_committed_sees_committed_transactions_exactly_once(
    bootstrap: str, topic_factory: TopicFactory
) -> None:
    topic = topic_factory(partitions=4)
    values = [f"value-{i:05d}".encode() for i in range(10_000)]
    keys = [f"key-{i % 101}".encode() for i in range(10_000)]
    aborted = [f"aborted-{i:04d}".encode() for i in range(500)]
    with transactional_producer(bootstrap) as producer:
        for start in range(0, 10_000, 2_000):  # five committed transactions...
            batch = slice(start, start + 2_000)
            send_transaction(producer, topic, values[batch], keys[batch])
            if start == 4_000:  # ...and an aborted one between them
                send_transaction(producer, topic, aborted, aborted, commit=False)

    committed = consume_all(bootstrap, topic, expected_count=10_000)
    everything = consume_all(bootstrap, topic, 10_500, isolation_level="read_uncommitted")

    assert len(committed) == 10_000
    assert {r.value for r in committed} == set(values)
    for partition in range(4):  # in produce order within each partition
        in_partition = [r.value or b"" for r in committed if r.partition == partition]
        assert in_partition and in_partition == sorted(in_partition)
    assert sorted(r.value or b"" for r in everything) == sorted(values + aborted)  # all written
    assert end_offsets(bootstrap, topic, "read_committed") == end_offsets(bootstrap, topic)
