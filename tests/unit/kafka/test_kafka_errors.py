"""librdkafka errors reach the user as one line in our words (issue 28, item 2)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from worker.kafka.errors import call, failure
from worker.kafka.types import FailureKind, KafkaFailure


def _fenced() -> KafkaError:
    return KafkaError(KafkaError._FENCED, "This instance has been fenced", fatal=True)


def test_a_systemerror_hiding_a_pending_kafka_exception_is_that_failure() -> None:
    """A fenced producer's flush raised KafkaException with callbacks still to serve: the
    next callback's KafkaError.str failed with SystemError, which reached the user raw."""

    def flush() -> None:
        try:
            raise KafkaException(_fenced())
        except KafkaException as exc:
            raise SystemError(
                "<method 'str' of 'confluent_kafka.cimpl.KafkaError' objects> returned a "
                "result with an exception set"
            ) from exc

    with pytest.raises(KafkaFailure) as caught:
        call(flush)
    assert caught.value.kind == FailureKind.FENCED
    assert "same --instance-id" in str(caught.value)


def test_a_systemerror_of_another_origin_is_not_swallowed() -> None:
    def broken() -> None:
        raise SystemError("something else")

    with pytest.raises(SystemError):
        call(broken)


def test_a_fenced_producer_names_the_cause_and_the_fix() -> None:
    text = str(failure(_fenced()))
    assert "transactional id" in text and "SCORING_WORKER_INSTANCE_ID" in text
