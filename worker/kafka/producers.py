"""The producer wrapper: idempotent (at-least-once) and transactional (exactly-once),
with failure-only delivery reports; every librdkafka error becomes a ``KafkaFailure``.
`run` uses them directly; `publish` and `replay --output-topic` through
``worker.kafka.writer.TopicWriter``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from worker.kafka.clients import topic_partitions, with_callbacks
from worker.kafka.errors import call as _call
from worker.kafka.errors import failure
from worker.kafka.errors import from_exception as _from_exception
from worker.kafka.types import Call, ErrorHandler, KafkaFailure, Outgoing, Partition

# confluent-kafka warns (RuntimeWarning, raw on stderr) when closing a producer whose open
# transaction cannot be aborted: a fenced or fatal producer, whose failure the worker has
# already reported in its own words when it closes it.
warnings.filterwarnings(
    "ignore", message="Producer abort_transaction failed during close", category=RuntimeWarning
)


class _Sender:
    def __init__(
        self,
        config: Mapping[str, Any],
        on_error: ErrorHandler | None,
        logger: logging.Logger | None,
        every_report: bool = False,
    ) -> None:
        # Delivery reports for failures only, through one config-level callback: a
        # per-message Python callback and report cost ~1.5 us per event on the hot path.
        # ``every_report``: a message's own ``on_delivery`` hears its success as well.
        only_errors = not every_report
        reports = {"on_delivery": self._on_delivery, "delivery.report.only.error": only_errors}
        self._producer = Producer(with_callbacks({**config, **reports}, on_error, logger))
        self.failures: list[KafkaFailure] = []
        self.hung = False
        """A call on this producer never returned: abandon it (do not close it)."""

    @property
    def client(self) -> Producer:
        """The confluent_kafka client (to wait until the broker answers it)."""
        return self._producer

    def _on_delivery(self, error: KafkaError | None, msg: Message) -> None:
        if error is not None:
            problem = failure(error)
            problem.message = Outgoing(msg.topic() or "", msg.value(), msg.key())
            self.failures.append(problem)

    def send(self, messages: Iterable[Outgoing]) -> None:
        """Queue every message, serving delivery reports whenever the local queue is full."""
        produce = self._producer.produce
        last: Any = None
        headers: Any = None
        for m in messages:
            topic, value, key, listed = m  # unpacked once: no attribute lookup per field
            if listed is not last:  # a batch's records share one list: converted once
                last = listed
                headers = client_headers(listed)
            try:  # the hot path: one call per record, no retry loop set up
                produce(topic, value, key, headers=headers)
            except (BufferError, KafkaException):
                self.produce(m, headers=headers)  # waits for room, or words the refusal

    def produce(self, m: Outgoing, **extras: Any) -> None:
        """Queue ``m`` (``extras``: ``headers``, ``partition``, ``timestamp``,
        ``on_delivery``, as the client takes them), waiting while the local queue is full;
        KafkaFailure (its ``message`` set) when the client refuses it at once."""
        while True:
            try:
                self._producer.produce(m.topic, m.value, m.key, **extras)
                return
            except BufferError:  # serve delivery reports, then try again
                self._producer.poll(0.05)
            except KafkaException as exc:  # refused at once (message.max.bytes...)
                problem = _from_exception(exc)
                problem.message = m
                raise problem from None

    def flush(self, timeout_s: float) -> int:
        """Wait for delivery reports; returns how many messages are still undelivered.
        A failure of the client itself (fenced, fatal) is added to ``failures``, never
        raised: flushing serves a rollback or a close that must go on to say why."""
        try:
            return int(_call(lambda: self._producer.flush(timeout_s)))
        except KafkaFailure as exc:
            self.failures.append(exc)
            return len(self._producer)

    def close(self) -> None:
        """Release the client (KafkaFailure if it reports an error, e.g. fenced); a hung
        producer is only dropped (closing would block)."""
        if not self.hung:
            _call(self._producer.close)


def client_headers(headers: Sequence[tuple[str, bytes]]) -> Any:
    """Headers as the client takes them fastest, in the same order: a dict when no name
    repeats (2.1 us per message with two headers, a list 2.4, none 1.0), else a list;
    None when there are none."""
    if not headers:
        return None
    unique = dict(headers)
    return unique if len(unique) == len(headers) else list(headers)


class IdempotentProducer(_Sender):
    """``enable.idempotence`` producer for at-least-once: send, flush, read ``failures``."""


class TransactionalProducer(_Sender):
    """A ``transactional.id`` producer; every call raises KafkaFailure on error."""

    def init(self, timeout_s: float) -> None:
        """Fence older instances of this id and abort what they left open. Like
        ``send_offsets``, left behind (``hung``) past ``3 * timeout_s``: after a broker
        restart it was seen never to return (issue 20)."""
        call = Call(
            "init_transactions",
            lambda: _call(lambda: self._producer.init_transactions(timeout_s)),
        )
        if not call.wait(3 * timeout_s):
            self.hung = True
        call.result()

    def begin(self) -> None:
        self.failures.clear()
        _call(self._producer.begin_transaction)

    def send_offsets(self, offsets: Mapping[Partition, int], group: Any, timeout_s: float) -> None:
        """Add the consumed offsets to the transaction. librdkafka may overrun ``timeout_s``
        (up to the transaction timeout) or, with a decommissioned coordinator cached, never
        return (librdkafka#5511): past ``3 * timeout_s`` this raises a retriable failure and
        the call is left behind (the caller must stop using this producer)."""
        tps = topic_partitions(offsets)
        call = Call(
            "send_offsets_to_transaction",
            lambda: _call(
                lambda: self._producer.send_offsets_to_transaction(tps, group, timeout_s)
            ),
        )
        if not call.wait(3 * timeout_s):
            self.hung = True
        call.result()

    def commit(self, timeout_s: float) -> None:
        _call(lambda: self._producer.commit_transaction(timeout_s))

    def abort(self, timeout_s: float) -> None:
        _call(lambda: self._producer.abort_transaction(timeout_s))
