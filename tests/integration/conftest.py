"""Fixtures for integration tests: one real Kafka broker per session, fresh topics per test.

The broker is the one named by KAFKA_BOOTSTRAP_SERVERS when that answers, else the local
one that `scripts/kafka-local up` starts (and leaves running: `make kafka-down` stops it).
Tests that stop, kill or restart the broker use the `broker` fixture and carry
`@pytest.mark.broker_control`; they are skipped when the broker is not the local one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from kafka_broker import (
    BrokerError,
    LocalBroker,
    TopicFactory,
    create_topic,
    delete_topics,
    is_reachable,
    unique_topic,
)

HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "broker_control: stops, kills or restarts the local broker "
        "(skipped when KAFKA_BOOTSTRAP_SERVERS names another broker)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def local_broker() -> LocalBroker:
    """The `scripts/kafka-local` broker for this checkout and environment (maybe stopped)."""
    return LocalBroker()


@pytest.fixture(scope="session")
def bootstrap(local_broker: LocalBroker) -> str:
    """Bootstrap servers of a running broker: KAFKA_BOOTSTRAP_SERVERS, else the local one."""
    named = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if named and is_reachable(named):
        return named
    if named and named != local_broker.bootstrap:
        pytest.fail(
            f"KAFKA_BOOTSTRAP_SERVERS={named} does not answer, and it is not the local "
            f"broker ({local_broker.bootstrap}) that scripts/kafka-local could start",
            pytrace=False,
        )
    try:
        return local_broker.up()
    except BrokerError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def broker(
    request: pytest.FixtureRequest, bootstrap: str, local_broker: LocalBroker
) -> Iterator[LocalBroker]:
    """Control of the session broker; the test must be marked `broker_control`.

    After the test the broker is started again if the test left it down.
    """
    if request.node.get_closest_marker("broker_control") is None:
        pytest.fail("tests using the `broker` fixture must be marked @pytest.mark.broker_control")
    if not local_broker.manages(bootstrap):
        pytest.skip(f"the broker at {bootstrap} is not run by scripts/kafka-local")
    yield local_broker
    local_broker.up()


@pytest.fixture
def topic_factory(request: pytest.FixtureRequest, bootstrap: str) -> Iterator[TopicFactory]:
    """`topic_factory(partitions=1, config=None) -> name`: a new topic, deleted after the test.

    Set KAFKA_KEEP_TOPICS=1 to keep the topics for a look after a failure.
    """
    created: list[str] = []

    def make(partitions: int = 1, config: Mapping[str, str] | None = None) -> str:
        name = unique_topic(request.node.name)
        create_topic(bootstrap, name, partitions, config=config)
        created.append(name)
        return name

    yield make
    if created and os.environ.get("KAFKA_KEEP_TOPICS") != "1":
        delete_topics(bootstrap, created)
