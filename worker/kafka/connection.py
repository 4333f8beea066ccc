"""Where the broker is, and how the one-shot commands talk to it (no confluent_kafka
import at module level: the option parsing stays light).

A broker that refuses the client (a wrong SASL password, a CA that did not sign its
certificate, mTLS without a client certificate) looks, to every blocking call, like one
that does not answer: ``_TRANSPORT`` after the whole deadline. The reason only reaches the
error callback, so every client made from a ``Connection`` reports there (``Refusals``),
``reach`` polls for it before the first long wait, and ``unreachable`` quotes it: the same
``auth: ...`` line `run` gives, within a second (issue 28).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.errors import RuntimeFailure
from worker.kafka.tls import certificate_name_problem
from worker.logs import KafkaLog, librdkafka_logger

REACH_SLICE_S = 0.5
"""How long each metadata request of ``reach`` waits before the error callback is served."""


class Refusals:
    """The last refusal (authentication, authorisation, TLS certificate) the error callbacks
    of a connection's clients reported, as a ``KafkaFailure``-shaped text; None: none."""

    def __init__(self) -> None:
        self.last: str | None = None

    def __call__(self, error: Any) -> None:
        """librdkafka's ``error_cb``: keep ``error`` (a ``KafkaError``) if it is a refusal."""
        from worker.kafka.errors import failure  # confluent_kafka only once a client exists
        from worker.kafka.types import FailureKind

        problem = failure(error)
        if problem.kind == FailureKind.AUTH:
            self.last = str(problem)


@dataclass(frozen=True)
class Connection:
    """Where the broker is, librdkafka passthrough properties, and how long to wait for it."""

    bootstrap_servers: str
    properties: Mapping[str, str] = field(default_factory=dict)
    """Passed to every client; ``consumer.``/``producer.`` prefixed keys to that client only
    (the same convention as ``run --kafka-property``)."""
    timeout_s: float = 30.0
    log: KafkaLog | None = field(default=None, compare=False)
    """Where librdkafka's log lines go (None: librdkafka's default, raw on stderr)."""
    refusals: Refusals = field(default_factory=Refusals, compare=False)

    def config(self, scope: str, **forced: Any) -> dict[str, Any]:
        shared = {k: v for k, v in self.properties.items() if k.split(".", 1)[0] not in SCOPES}
        prefix = scope + "."
        own = {k[len(prefix) :]: v for k, v in self.properties.items() if k.startswith(prefix)}
        config = {"bootstrap.servers": self.bootstrap_servers, **shared, **own, **forced}
        if self.log is not None:
            config["logger"] = librdkafka_logger(self.log)
        config["error_cb"] = self.refusals
        return config

    def reach(self, client: Any, what: str) -> None:
        """Wait until ``client`` (a confluent_kafka client made from ``config``) gets a
        metadata answer; RuntimeFailure as soon as the broker refused it (``auth: ...``),
        or after ``timeout_s`` without an answer."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            slice_s = max(min(REACH_SLICE_S, deadline - time.monotonic()), 0.01)
            try:
                client.list_topics(timeout=slice_s)
                return
            except Exception as exc:  # KafkaException: no answer within the slice
                cause: object = exc.args[0] if exc.args else exc
            client.poll(0)  # serves the error callback: why there was no answer
            if self.refusals.last is not None or time.monotonic() >= deadline:
                raise self.unreachable(what, cause)

    def unreachable(self, what: str, cause: object) -> RuntimeFailure:
        misnamed = certificate_name_problem(self.config("admin"))
        if misnamed is not None:  # librdkafka would only say "check ssl.ca.location"
            return RuntimeFailure(f"{what}: {misnamed}")
        if self.refusals.last is not None:
            return RuntimeFailure(f"{what}: auth: {self.refusals.last}")
        last = self.log.last if self.log is not None else None
        return RuntimeFailure(
            f"{what}: broker {self.bootstrap_servers} did not answer within "
            f"{self.timeout_s:g}s ({cause})" + (f"; last broker error: {last}" if last else "")
        )


SCOPES = ("consumer", "producer")
