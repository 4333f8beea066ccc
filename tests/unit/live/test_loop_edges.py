"""The pure edges of the loop: error routing, Message -> InputEvent, dead letters, log lines."""

from __future__ import annotations

import io

import orjson
import pytest
from confluent_kafka import KafkaError, Message

from schemas.rejection import Rejection
from schemas.wire_names import HEADER_TRUNCATED, RejectReason
from worker.core.events import InputEvent
from worker.core.scoring import Rejected
from worker.kafka.clients import Call, FailureKind, KafkaFailure, classify, to_input_events
from worker.live.deadletter import dead_letter_messages
from worker.logs import EventLog


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (KafkaError(KafkaError._FENCED, fatal=True), FailureKind.FENCED),
        (KafkaError(KafkaError.PRODUCER_FENCED, fatal=True), FailureKind.FENCED),
        (KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), FailureKind.AUTH),
        (KafkaError(KafkaError._AUTHENTICATION), FailureKind.AUTH),
        (
            KafkaError(KafkaError._SSL, "SSL handshake failed: certificate verify failed"),
            FailureKind.AUTH,
        ),
        (KafkaError(KafkaError._SSL, "SSL transport error: connection reset"), FailureKind.OTHER),
        (  # mTLS: the broker refuses a missing or unknown client certificate
            KafkaError(
                KafkaError._TRANSPORT,
                "ssl://127.0.0.1:9095/bootstrap: Receive failed: error:0A000412:SSL routines::"
                "ssl/tls alert bad certificate: SSL alert number 42",
            ),
            FailureKind.AUTH,
        ),
        (
            KafkaError(KafkaError._TRANSPORT, "SSL routines::tlsv13 alert certificate required"),
            FailureKind.AUTH,
        ),
        (KafkaError(KafkaError._SSL, "SSL routines::tlsv1 alert unknown ca"), FailureKind.AUTH),
        (KafkaError(KafkaError.UNKNOWN_MEMBER_ID, txn_requires_abort=True), FailureKind.ABORTABLE),
        (
            KafkaError(KafkaError.INVALID_PRODUCER_EPOCH, txn_requires_abort=True),
            FailureKind.ABORTABLE,
        ),
        (KafkaError(KafkaError._TIMED_OUT, retriable=True), FailureKind.RETRIABLE),
        (KafkaError(KafkaError._TRANSPORT), FailureKind.RETRIABLE),
        (KafkaError(KafkaError.ILLEGAL_GENERATION), FailureKind.REBALANCE),
        (KafkaError(KafkaError._STATE, fatal=True), FailureKind.FATAL),
        (KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), FailureKind.OTHER),
    ],
)
def test_errors_are_routed_by_what_to_do(error: KafkaError, kind: FailureKind) -> None:
    assert classify(error) is kind


def test_messages_become_input_events_and_errors_failures() -> None:
    messages = [
        Message("t", 2, 41, b"k", b"v", timestamp=(1, 1_700_000_000_000)),
        Message("t", 2, 42, None, None, timestamp=(0, -1)),
        Message("t", 2, error=KafkaError(KafkaError._PARTITION_EOF)),
        Message("t", 0, error=KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)),
    ]
    polled = to_input_events(messages)
    assert polled.events == [
        InputEvent(b"v", b"k", "t", 2, 41, 1_700_000_000_000),
        InputEvent(None, None, "t", 2, 42, None),
    ]
    assert [f.kind for f in polled.failures] == [FailureKind.AUTH]


def test_dead_letters_keep_the_bytes_and_say_why() -> None:
    events = [
        InputEvent(b"{bad", b"k0", "in", 3, 7, 5),
        InputEvent(b"x" * 2_000, b"k1", "in", 3, 8, 6),
    ]
    rejected = [
        Rejected(0, Rejection(RejectReason.INVALID_JSON, "not valid JSON")),
        Rejected(1, Rejection(RejectReason.TOO_LARGE, "2000 bytes > limit 1000")),
    ]
    small, large = dead_letter_messages(
        events, rejected, topic="dlq", bundle_digest="sha256:ab", max_value_bytes=1_024
    )
    assert small.topic == "dlq" and small.key == b"k0" and small.value == b"{bad"
    headers = dict(small.headers)
    assert headers["scoring.reason"] == b"invalid_json"
    assert headers["scoring.source.partition"] == b"3" and headers["scoring.source.offset"] == b"7"
    assert headers["scoring.bundle.digest"] == b"sha256:ab" and HEADER_TRUNCATED not in headers
    assert large.value == b"x" * 1_024 and dict(large.headers)[HEADER_TRUNCATED] == b"2000"


def test_log_lines_are_json_with_the_contract_fields_and_rate_limited() -> None:
    clock = [0.0]
    stream = io.StringIO()
    log = EventLog(stream, static={"instance": "w1"}, clock=lambda: clock[0])
    log.emit("start", bundle="b")
    for _ in range(5):
        log.limited("k", 10.0, "kafka_error", "warning", error="down")
    clock[0] = 11.0
    log.limited("k", 10.0, "kafka_error", "warning", error="down")
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["start", "kafka_error", "kafka_error"]
    assert all({"ts", "level", "event", "instance"} <= line.keys() for line in lines)


def test_a_call_that_never_returns_is_given_up_on() -> None:
    import threading

    release = threading.Event()
    call = Call("stuck", release.wait)
    assert not call.wait(0.05)
    with pytest.raises(KafkaFailure, match="_HUNG"):
        call.result()
    release.set()
    assert call.wait(5) and call.result() is True
