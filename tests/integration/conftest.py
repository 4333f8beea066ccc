"""Fixtures for integration tests: one real Kafka broker per session, fresh topics per test.

The broker is the one named by KAFKA_BOOTSTRAP_SERVERS when that answers, else the local
one that `scripts/kafka-local up` starts (and leaves running: `make kafka-down` stops it).

Tests that stop, kill or restart a broker carry `@pytest.mark.broker_control` and use the
`broker` fixture: a broker of their own, started by `scripts/kafka-local` on free ports
with its data in a temporary directory, so the tests running beside them (pytest-xdist)
never see the shared broker go away. Every such test runs on one xdist worker (the
`private-broker` group), which starts that broker once.
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

from harness.ports import free_port

HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "broker_control: stops, kills or restarts the local broker "
        "(skipped when KAFKA_BOOTSTRAP_SERVERS names another broker)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if not item.path.is_relative_to(HERE):
            continue
        item.add_marker(pytest.mark.integration)
        if item.get_closest_marker("broker_control") is not None:
            # one xdist worker runs them all (`--dist loadgroup`): one private broker
            item.add_marker(pytest.mark.xdist_group("private-broker"))
        else:
            # a module's tests share its module- and session-scoped fixtures (bundles,
            # streams, research scores): on one xdist worker they are built once
            item.add_marker(pytest.mark.xdist_group(item.path.stem))


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


@pytest.fixture(scope="session")
def private_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A broker of this session's own (`scripts/kafka-local` on free ports, data in a
    temporary directory, no SASL_SSL listener), started on first use, stopped at the end."""
    home = tmp_path_factory.mktemp("private-broker")
    env = {
        **os.environ,
        "KAFKA_PORT": str(free_port()),
        "KAFKA_CONTROLLER_PORT": str(free_port()),
        "KAFKA_DATA_DIR": str(home / "data"),
        "KAFKA_RUN_DIR": str(home / "run"),
        "KAFKA_SASL_SSL_PORT": "",
        "KAFKA_HEAP_OPTS": "-Xms128m -Xmx512m",
    }
    own = LocalBroker(env)
    try:
        own.up()
    except BrokerError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield own
    own.down()


@pytest.fixture
def broker(request: pytest.FixtureRequest, private_broker: LocalBroker) -> Iterator[LocalBroker]:
    """A broker the test may stop, kill or restart (`private_broker`); the test must be
    marked `broker_control` and reads `broker.bootstrap`, never the shared `bootstrap`.

    After the test the broker is started again if the test left it down.
    """
    if request.node.get_closest_marker("broker_control") is None:
        pytest.fail("tests using the `broker` fixture must be marked @pytest.mark.broker_control")
    yield private_broker
    private_broker.up()


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
