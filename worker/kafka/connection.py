"""Where the broker is, and how the one-shot commands talk to it (no confluent_kafka
import here: `topics create` and the option parsing stay light)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from worker.errors import RuntimeFailure
from worker.kafka.tls import certificate_name_problem
from worker.logs import KafkaLog, librdkafka_logger


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

    def config(self, scope: str, **forced: Any) -> dict[str, Any]:
        shared = {k: v for k, v in self.properties.items() if k.split(".", 1)[0] not in SCOPES}
        prefix = scope + "."
        own = {k[len(prefix) :]: v for k, v in self.properties.items() if k.startswith(prefix)}
        config = {"bootstrap.servers": self.bootstrap_servers, **shared, **own, **forced}
        if self.log is not None:
            config["logger"] = librdkafka_logger(self.log)
        return config

    def unreachable(self, what: str, cause: object) -> RuntimeFailure:
        misnamed = certificate_name_problem(self.config("admin"))
        if misnamed is not None:  # librdkafka would only say "check ssl.ca.location"
            return RuntimeFailure(f"{what}: {misnamed}")
        last = self.log.last if self.log is not None else None
        return RuntimeFailure(
            f"{what}: broker {self.bootstrap_servers} did not answer within "
            f"{self.timeout_s:g}s ({cause})" + (f"; last broker error: {last}" if last else "")
        )


SCOPES = ("consumer", "producer")
