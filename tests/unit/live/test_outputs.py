"""Refused outputs become outcomes; rollbacks are bounded; dead letters fit the DLQ."""

from __future__ import annotations

import io

import orjson
import pandas as pd
import pytest

from model_bundles.predict import Outputs
from schemas.errors import RuntimeFailure
from schemas.rejection import Rejection
from schemas.wire_names import HEADER_TRUNCATED, RejectReason
from worker.core.events import InputEvent
from worker.core.scoring import Rejected, ScoredBatch
from worker.kafka.admin import fit_batches
from worker.kafka.types import FailureKind, KafkaFailure, Outgoing, refused_messages
from worker.live.deadletter import dead_letter_messages, value_budget
from worker.live.delivery import DeliveryBatch
from worker.live.outputs import MAX_ROLLBACKS_IN_A_ROW, OutputGuard
from worker.logs import EventLog

EVENTS = [InputEvent(b"{}", f"k{i}".encode(), "in", 0, 10 + i) for i in range(3)]


def _scored() -> ScoredBatch:
    records = [orjson.dumps({"event_id": f"e{i}", "source": {"topic": "in", "partition": 0,
               "offset": 10 + i}}) for i in range(3)]  # fmt: skip
    outputs = Outputs(predictions=pd.Series(["a", "b", "c"]).to_numpy(), scores=None)
    return ScoredBatch([0, 1, 2], records, [], pd.DataFrame({"x": [1, 2, 3]}), outputs)


def _refusal(message: Outgoing, code: str = "MSG_SIZE_TOO_LARGE") -> KafkaFailure:
    problem = KafkaFailure(FailureKind.OTHER, code, "Broker: Message size too large")
    problem.message = message
    return problem


def _guard() -> tuple[OutputGuard, io.StringIO]:
    stream = io.StringIO()
    return OutputGuard("dlq", EventLog(stream)), stream


def test_a_refused_record_sends_its_event_to_the_dlq_when_the_batch_comes_again() -> None:
    guard, stream = _guard()
    scored = _scored()
    sent = [Outgoing("out", r, e.key) for r, e in zip(scored.records, EVENTS, strict=True)]
    batch = DeliveryBatch(sent, {}, EVENTS)  # each record made from its event
    guard.rolled_back(batch, [_refusal(Outgoing("out", sent[1].value, b"k1"))])
    assert "output_rejected" in stream.getvalue()

    again = guard.apply(EVENTS, _scored())
    assert again.indices == [0, 2] and again.records == [scored.records[0], scored.records[2]]
    [rejected] = again.rejected
    assert rejected.index == 1 and rejected.rejection.reason == RejectReason.OUTPUT_REJECTED
    assert "MSG_SIZE_TOO_LARGE" in rejected.rejection.detail

    guard.delivered(EVENTS)
    assert guard.refused == {} and guard.rollbacks_in_a_row == 0
    assert guard.apply(EVENTS, _scored()).indices == [0, 1, 2]


def test_a_refused_dead_letter_stops_the_worker_naming_the_event() -> None:
    guard, _ = _guard()
    rejected = [Rejected(2, Rejection(RejectReason.INVALID_JSON, "not valid JSON"))]
    sent = dead_letter_messages(
        EVENTS, rejected, topic="dlq", bundle_digest="sha256:ab", max_value_bytes=1024
    )
    refused = Outgoing("dlq", sent[0].value, sent[0].key)  # reports carry no headers
    with pytest.raises(RuntimeFailure) as caught:
        guard.rolled_back(DeliveryBatch(sent, {}, [EVENTS[2]]), [_refusal(refused)])
    message = str(caught.value)
    assert message.startswith("dead-letter topic dlq refused the dead letter of ")
    assert "topic in partition 0 offset 12: MSG_SIZE_TOO_LARGE" in message


def test_rollbacks_in_a_row_are_bounded() -> None:
    guard, _ = _guard()
    for _ in range(MAX_ROLLBACKS_IN_A_ROW):
        guard.rolled_back(DeliveryBatch([], {}), [])
    guard.delivered([])
    for _ in range(MAX_ROLLBACKS_IN_A_ROW):
        guard.rolled_back(DeliveryBatch([], {}), [])
    with pytest.raises(RuntimeFailure, match="rolled back in a row"):
        guard.rolled_back(DeliveryBatch([], {}), [])


def test_only_per_message_errors_with_a_known_message_are_refusals() -> None:
    timed_out = _refusal(Outgoing("out", b"v"), "_MSG_TIMED_OUT")
    unknown = KafkaFailure(FailureKind.OTHER, "MSG_SIZE_TOO_LARGE", "no message")
    too_large = _refusal(Outgoing("out", b"v"))
    assert refused_messages([timed_out, unknown], too_large, None) == [too_large]


@pytest.mark.parametrize("limit", [2_000, 20_000, 1_048_588])
def test_a_dead_letter_fits_the_dlq_topic_limit_alone(limit: int) -> None:
    event = InputEvent(b"y" * 50_000, b"key", "in", 1, 99)
    rejected = [Rejected(0, Rejection(RejectReason.INVALID_JSON, "not valid JSON: " * 5))]
    [letter] = dead_letter_messages(
        [event],
        rejected,
        topic="dlq",
        bundle_digest="sha256:" + "ab" * 32,
        max_value_bytes=900_000,
        max_message_bytes=limit,
    )
    assert letter.value is not None
    if limit < 50_000:
        assert dict(letter.headers)[HEADER_TRUNCATED] == b"50000"
        assert len(letter.value) == value_budget(letter.key, list(letter.headers), limit)
        assert 0 < len(letter.value) < limit
    else:
        assert letter.value == event.value and HEADER_TRUNCATED not in dict(letter.headers)


def test_batches_are_capped_by_the_smallest_topic_limit() -> None:
    config = {"linger.ms": 5}
    assert fit_batches(config, {}) == config
    assert fit_batches(config, {"out": 1_048_588, "dlq": 2_000_000}) == config
    assert fit_batches(config, {"out": 1_048_588, "dlq": 20_000})["batch.size"] == 19_488
    assert fit_batches({"batch.size": 5_000}, {"dlq": 20_000}) == {"batch.size": 5_000}
