"""Where predictions go and which input partitions the worker reads (issue 28, items 8, 9).

- A prediction's partition is the one Kafka's Java clients choose for its key (murmur2,
  computed here independently of librdkafka), so an output topic can be co-partitioned
  with the input for joins downstream.
- Partitions added to the input topic while the worker runs are assigned, read and given
  a lag series within the metadata refresh interval (10 s), not librdkafka's 5 minutes.
"""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewPartitions
from kafka_broker import QUIET, TopicFactory, consume_all, poll_until, produce
from prometheus_client.parser import text_string_to_metric_families
from worker_harness import Topics, WorkerProcess, cached_stream, produce_stream, stop_all

from harness.http import http_get
from harness.ports import free_port
from worker.live.settings import METADATA_REFRESH_MS


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2`` (Java), as a signed 32-bit int."""
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    whole = len(data) // 4
    for i in range(whole):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[4 * whole :]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h >= 1 << 31 else h


def java_partition(key: bytes, partitions: int) -> int:
    """``Utils.toPositive(Utils.murmur2(key)) % numPartitions``: the Java default."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def test_murmur2_matches_kafka_s_own_test_vectors() -> None:
    # org.apache.kafka.common.utils.UtilsTest#testMurmur2
    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    assert murmur2(b"a-little-bit-long-string") == -985981536
    assert murmur2(b"a-little-bit-longer-string") == -1486304829
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971
    assert murmur2(b"abc") == 479470107


def test_a_prediction_goes_to_the_partition_java_chooses_for_its_key(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    output_partitions = 7
    topics = Topics(topic_factory(1), topic_factory(output_partitions), topic_factory(1))
    stream = cached_stream(400, 9)
    produce_stream(bootstrap, topics.input, stream)
    worker = WorkerProcess(bootstrap, topics, tmp_path, "murmur", "--max-events", "400")
    try:
        assert worker.wait(240) == 0, worker.story()
    finally:
        stop_all([worker])
    records = consume_all(bootstrap, topics.output, stream.valid)
    assert len(records) == stream.valid
    wrong = [
        (r.key, r.partition, java_partition(r.key or b"", output_partitions))
        for r in records
        if r.partition != java_partition(r.key or b"", output_partitions)
    ]
    assert not wrong, f"{len(wrong)} of {len(records)} off the Java partition: {wrong[:5]}"


def _lag_partitions(port: int, topic: str) -> set[int]:
    status, body = http_get(f"http://127.0.0.1:{port}/metrics")
    if status != 200:
        return set()
    found: set[int] = set()
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            if s.name == "scoring_consumer_lag" and s.labels.get("topic") == topic:
                found.add(int(s.labels["partition"]))
    return found


def test_partitions_added_to_the_input_are_read_within_the_refresh_interval(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    topics = Topics(topic_factory(1), topic_factory(1), topic_factory(1))
    port = free_port()
    http = ("--metrics-host", "127.0.0.1", "--metrics-port", str(port))
    worker = WorkerProcess(bootstrap, topics, tmp_path, "grow", *http)
    try:
        worker.wait_event("assigned", 120)
        admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
        grown = admin.create_partitions([NewPartitions(topics.input, 3)])
        grown[topics.input].result(30)
        added = time.monotonic()
        values = [b'{"event_id": "new-%d"}' % i for i in range(30)]
        keys = [b"k%d" % i for i in range(30)]
        produce(bootstrap, topics.input, values, keys)  # spread over the three partitions

        def assigned_all() -> float | None:
            owned = {a for line in worker.events("assigned") for a in line["assignment"]}
            if {f"{topics.input}:{p}" for p in range(3)} <= owned:
                return time.monotonic() - added
            return None

        waited_s = poll_until("the new partitions assigned", 120, assigned_all)
        assert waited_s < METADATA_REFRESH_MS / 1000 + 10, waited_s

        def lag_everywhere() -> bool | None:
            return True if _lag_partitions(port, topics.input) == {0, 1, 2} else None

        poll_until("a lag series for every input partition", 30, lag_everywhere)
        poll_until(
            "the new partitions' events scored",
            60,
            lambda: True if len(consume_all(bootstrap, topics.dlq)) >= 30 else None,
        )
        code, _ = worker.stop()
        assert code == 0, worker.story()
    finally:
        stop_all([worker])
