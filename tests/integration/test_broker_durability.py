"""The test broker survives a SIGKILL: its data, its transactions and its consumer groups'
offsets are all there after the restart (on a broker of the test's own: `broker`)."""

from __future__ import annotations

import pytest
from kafka_broker import (
    LocalBroker,
    TopicFactory,
    commit_offsets,
    committed_offsets,
    consume_all,
    end_offsets,
    is_reachable,
    poll_until,
    produce,
    unique_topic,
)


@pytest.fixture
def bootstrap(broker: LocalBroker) -> str:
    """This module's tests stop their broker: they and `topic_factory` use the private one."""
    return broker.bootstrap


@pytest.mark.broker_control
def test_data_and_group_offsets_survive_sigkill(
    bootstrap: str, broker: LocalBroker, topic_factory: TopicFactory
) -> None:
    topic = topic_factory(partitions=3)
    group = unique_topic("it-group")
    values = [f"durable-{i:04d}".encode() for i in range(600)]
    produce(bootstrap, topic, values[:300], keys=values[:300])
    produce(bootstrap, topic, values[300:], keys=values[300:], transactional=True)
    ends = _after_commit_markers(bootstrap, topic)
    offsets = {partition: end // 2 for partition, end in ends.items()}
    commit_offsets(bootstrap, group, topic, offsets)
    assert committed_offsets(bootstrap, group, topic) == offsets
    old_pid = broker.pid

    broker.kill()
    assert broker.pid is None
    assert not is_reachable(bootstrap, timeout_s=1)
    broker.restart()

    assert broker.pid not in (None, old_pid)
    assert end_offsets(bootstrap, topic) == ends
    assert committed_offsets(bootstrap, group, topic) == offsets
    assert sorted(r.value or b"" for r in consume_all(bootstrap, topic, 600)) == values
    produce(bootstrap, topic, [b"after-restart"], transactional=True)  # transactions work again
    assert len(consume_all(bootstrap, topic, 601)) == 601


def _after_commit_markers(bootstrap: str, topic: str, deadline_s: float = 30) -> dict[int, int]:
    """End offsets once the commit markers are written: the coordinator writes them after
    the commit returns, and each one takes an offset (the last stable offset reaches the
    high watermark only then)."""

    def settled() -> dict[int, int] | None:
        ends = end_offsets(bootstrap, topic)
        return ends if ends == end_offsets(bootstrap, topic, "read_committed") else None

    return poll_until("commit markers written", deadline_s, settled)
