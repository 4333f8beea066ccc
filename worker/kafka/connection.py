"""How the one-shot commands talk to the broker their ``KafkaSettings`` name (no
confluent_kafka import at module level: the option parsing stays light).

A broker that refuses the client (a wrong SASL password, a CA that did not sign its
certificate, mTLS without a client certificate) looks, to every blocking call, like one
that does not answer: ``_TRANSPORT`` after the whole deadline. The reason only reaches the
error callback, so every client made from a ``Connection`` reports there (``Refusals``),
``reach`` polls for it before the first long wait, and ``unreachable`` quotes it: the same
``auth: ...`` line `run` gives, within a second (issue 28).

``--broker-timeout`` means what it means for `run`: how long a broker that does not answer
is waited for; 0: for ever (``deadline`` is then infinite, and each single request, which
librdkafka must be given a finite wait, is asked with ``request_s``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from schemas.errors import RuntimeFailure
from worker.kafka.properties import Scope
from worker.kafka.settings import KafkaSettings, deadline_of
from worker.kafka.tls import certificate_name_problem
from worker.kafka.types import FailureKind, KafkaFailure
from worker.logs import KafkaLog, librdkafka_logger, redact

REACH_SLICE_S = 0.5
"""How long each metadata request of ``reach`` waits before the error callback is served."""
WAITING_NOTE_S = (10.0, 30.0)
"""``reach`` says it is still waiting after the first of these many seconds, then every
second: a long or endless ``--broker-timeout`` is not a silent hang."""


class Refusals:
    """The last refusal (authentication, authorisation, TLS certificate) the error callbacks
    of a connection's clients reported, as a ``KafkaFailure``-shaped text; None: none."""

    def __init__(self) -> None:
        self.last: str | None = None

    def __call__(self, error: Any) -> None:
        """librdkafka's ``error_cb``: keep ``error`` (a ``KafkaError``) if it is a refusal."""
        from worker.kafka.errors import failure  # confluent_kafka only once a client exists

        problem = failure(error)
        if problem.kind == FailureKind.AUTH:
            self.last = str(problem)


@dataclass(frozen=True)
class Connection:
    """The Kafka settings of a one-shot command, where librdkafka's lines go, and the
    refusals its clients met."""

    settings: KafkaSettings
    log: KafkaLog | None = field(default=None, compare=False)
    """Where librdkafka's log lines go (None: librdkafka's default, raw on stderr)."""
    refusals: Refusals = field(default_factory=Refusals, compare=False)

    @classmethod
    def plain(cls, bootstrap_servers: str) -> Connection:
        """A connection to ``bootstrap_servers`` with no other setting (tools, tests)."""
        return cls(KafkaSettings(bootstrap_servers=bootstrap_servers))

    @property
    def bootstrap_servers(self) -> str:
        return self.settings.bootstrap_servers

    @property
    def timeout_s(self) -> float:
        """``--broker-timeout``: seconds a silent broker is waited for; 0: for ever."""
        return self.settings.broker_timeout_s

    @property
    def request_s(self) -> float:
        """Seconds one request may take (librdkafka needs a finite wait)."""
        return self.settings.request_timeout_s

    def deadline(self) -> float:
        """``time.monotonic()`` past which waiting for the broker is given up (inf: never)."""
        return deadline_of(self.timeout_s)

    def config(self, scope: Scope | None, **forced: Any) -> dict[str, Any]:
        """librdkafka properties of a ``scope`` client (None: an admin client), with
        ``forced`` over the passthrough ones, the log and error callbacks set."""
        config = {
            **self.settings.kafka_properties(scope),
            "bootstrap.servers": self.bootstrap_servers,
            **forced,
        }
        if self.log is not None:
            config["logger"] = librdkafka_logger(self.log)
        config["error_cb"] = self.refusals
        return config

    def reach(self, client: Any, what: str) -> None:
        """Wait until ``client`` (a confluent_kafka client made from ``config``) gets a
        metadata answer; RuntimeFailure as soon as the broker refused it (``auth: ...``),
        or after ``timeout_s`` without an answer (0: never)."""
        deadline = self.deadline()
        started = time.monotonic()
        note_at = started + WAITING_NOTE_S[0]
        while True:
            slice_s = max(min(REACH_SLICE_S, deadline - time.monotonic()), 0.01)
            try:
                client.list_topics(timeout=slice_s)
                return
            except Exception as exc:  # KafkaException: no answer within the slice
                cause: object = exc.args[0] if exc.args else exc
            client.poll(0)  # serves the error callback: why there was no answer
            now = time.monotonic()
            if self.refusals.last is not None or now >= deadline:
                raise self.unreachable(what, cause)
            if now >= note_at:
                self.say_waiting(what, now - started, cause)
                note_at = now + WAITING_NOTE_S[1]

    def say_waiting(self, what: str, waited_s: float, cause: object) -> None:
        """One stderr line: the broker has not answered ``what`` for ``waited_s`` seconds,
        why (``cause``: a ``KafkaError`` or text), and how long it will still be waited for."""
        limit = "0: for ever" if self.timeout_s == 0 else f"{self.timeout_s:g}s"
        print(
            redact(
                f"scoring-worker: warning: {what}: broker {self.bootstrap_servers} has not "
                f"answered for {waited_s:.0f}s ({_reason(cause)}); still waiting "
                f"(--broker-timeout {limit})"
            ),
            file=sys.stderr,
            flush=True,
        )

    def failed(self, what: str, problem: KafkaFailure, acl: str) -> RuntimeFailure:
        """An authorization error met while ``what`` as ``auth: ...; needs ACL ALLOW
        <acl>``; anything else as a broker that did not answer."""
        if problem.kind == FailureKind.AUTH:
            return RuntimeFailure(f"{what}: auth: {problem}; needs ACL ALLOW {acl}")
        return self.unreachable(what, problem)

    def unreachable(self, what: str, cause: object) -> RuntimeFailure:
        misnamed = certificate_name_problem(self.config(None))
        if misnamed is not None:  # librdkafka would only say "check ssl.ca.location"
            return RuntimeFailure(f"{what}: {misnamed}")
        if self.refusals.last is not None:
            return RuntimeFailure(f"{what}: auth: {self.refusals.last}")
        last = self.log.last if self.log is not None else None
        return RuntimeFailure(
            f"{what}: broker {self.bootstrap_servers} did not answer within "
            f"{self.request_s:g}s ({_reason(cause)})"
            + (f"; last broker error: {last}" if last else "")
        )


def _reason(cause: object) -> str:
    """A ``KafkaError``'s own words (``str()`` of one is ``KafkaError{code=...,str="..."}``,
    which a reader should not have to parse); anything else as it prints."""
    words = getattr(cause, "str", None)
    return str(words()) if callable(words) else str(cause)
