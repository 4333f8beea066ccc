"""librdkafka errors, sorted by what the worker must do about them.

Every ``KafkaError`` becomes a ``KafkaFailure`` whose ``kind`` routes it: retry the same
call, abort the transaction and redo the batch, rejoin the group, or stop.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from worker.kafka.types import FailureKind, KafkaFailure

_AUTH = {
    KafkaError._AUTHENTICATION,
    KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
}
_FENCED = {
    KafkaError.PRODUCER_FENCED,
    KafkaError._FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.TRANSACTION_COORDINATOR_FENCED,
    KafkaError.FENCED_INSTANCE_ID,
}
_REBALANCE = {
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError._ASSIGNMENT_LOST,
}
_RETRIABLE = {
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._TIMED_OUT,
    KafkaError._RESOLVE,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.NOT_COORDINATOR,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.BROKER_NOT_AVAILABLE,
    KafkaError.NETWORK_EXCEPTION,
    KafkaError._WAIT_COORD,
    KafkaError._TIMED_OUT_QUEUE,
    KafkaError.UNSTABLE_OFFSET_COMMIT,
}
# A broker certificate the configured CA did not sign will not become valid by retrying.
_UNTRUSTED = "certificate verify failed"
# Nor will a client certificate the broker refuses (mTLS, ssl.client.auth=required): no
# certificate, one its CA did not sign, an expired one. The broker answers with a TLS alert,
# which librdkafka reports as a transport failure ("... ssl/tls alert bad certificate ...").
_REFUSED_BY_BROKER = re.compile(
    r"alert (bad certificate|certificate required|unknown ca|unsupported certificate"
    r"|certificate (expired|revoked|unknown)|access denied)"
)


def _certificate_refused(error: KafkaError) -> bool:
    """True when a TLS error cannot heal: our CA distrusts the broker, or it refuses us."""
    code, text = error.code(), error.str()
    if code == KafkaError._SSL and _UNTRUSTED in text:
        return True
    return code in (KafkaError._SSL, KafkaError._TRANSPORT) and bool(
        _REFUSED_BY_BROKER.search(text)
    )


BROKER_DOWN = {KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE}


def classify(error: KafkaError) -> FailureKind:
    code = error.code()
    if code in _AUTH or _certificate_refused(error):
        return FailureKind.AUTH
    if code in _FENCED and (error.fatal() or code != KafkaError.INVALID_PRODUCER_EPOCH):
        return FailureKind.FENCED
    if error.txn_requires_abort():
        return FailureKind.ABORTABLE
    if error.fatal():
        return FailureKind.FATAL
    if code in _REBALANCE:
        return FailureKind.REBALANCE
    if error.retriable() or code in _RETRIABLE:
        return FailureKind.RETRIABLE
    return FailureKind.OTHER


_REFUSED_HINT = (
    "; the broker refused this client's TLS certificate (mTLS: ssl.certificate.location and "
    "ssl.key.location must name a certificate signed by a CA the broker trusts, and its key)"
)


_PRODUCER_FENCED = {
    KafkaError.PRODUCER_FENCED,
    KafkaError._FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
}
_FENCED_HINT = (
    "; another producer started with this worker's transactional id (<group>-<instance id>): "
    "two live replicas given the same --instance-id (SCORING_WORKER_INSTANCE_ID), or this "
    "process was paused past transaction.timeout.ms and replaced. Give every replica its "
    "own instance id (a StatefulSet pod name), or leave it unset to derive one"
)
_INSTANCE_HINT = (
    "; another group member uses the same group.instance.id: give every replica its own"
)


def failure(error: KafkaError) -> KafkaFailure:
    reason = error.str()
    if _REFUSED_BY_BROKER.search(reason):
        reason += _REFUSED_HINT
    kind = classify(error)
    if kind == FailureKind.FENCED and error.code() in _PRODUCER_FENCED:
        reason += _FENCED_HINT
    elif error.code() == KafkaError.FENCED_INSTANCE_ID:
        reason += _INSTANCE_HINT
    return KafkaFailure(kind, error.name(), reason, error.code() in BROKER_DOWN)


def from_exception(exc: KafkaException) -> KafkaFailure:
    error = exc.args[0] if exc.args else None
    if isinstance(error, KafkaError):
        return failure(error)
    return KafkaFailure(FailureKind.OTHER, "UNKNOWN", str(exc))


def kafka_cause(exc: BaseException) -> KafkaException | None:
    """The KafkaException behind ``exc`` (itself, or its cause or context), if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KafkaException):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def call(operation: Callable[[], Any]) -> Any:
    """Run one client call, turning KafkaException into KafkaFailure.

    A call that raises KafkaException while it still serves callbacks (a fatal error found
    during ``flush``: a fenced producer) leaves that exception pending when the next
    callback runs; the first C method the callback calls (``KafkaError.str``) then fails
    with ``SystemError: ... returned a result with an exception set``, and the call
    raises that. The KafkaException behind it is the failure (issue 28)."""
    try:
        return operation()
    except KafkaException as exc:
        raise from_exception(exc) from None
    except SystemError as exc:
        cause = kafka_cause(exc)
        if cause is None:
            raise
        raise from_exception(cause) from None
