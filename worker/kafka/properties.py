"""A librdkafka property a client refused at construction, in our words (issue 28).

librdkafka checks every property when a client is made and raises ``KafkaException``
``_INVALID_ARG`` (``No such configuration property: "sasl.pasword"``, ``Java JAAS
configuration is not supported``...): bad usage (exit 2), not a runtime failure. The
message names the property, never its value (a secret-looking one may be a password),
with the closest property name librdkafka knows when one is close.
"""

from __future__ import annotations

import difflib
import re

_NO_SUCH = re.compile(r'No such configuration property: "([^"]+)"')
_INVALID = re.compile(r'Invalid value (?:"[^"]*" )?for configuration property "([^"]+)"')
_JAAS = "Java JAAS configuration is not supported"

KNOWN = (
    *("bootstrap.servers", "client.id", "security.protocol", "sasl.mechanism"),
    *("sasl.mechanisms", "sasl.username", "sasl.password", "sasl.kerberos.service.name"),
    *("sasl.kerberos.principal", "sasl.kerberos.keytab", "sasl.oauthbearer.method"),
    *("sasl.oauthbearer.client.id", "sasl.oauthbearer.client.secret"),
    *("sasl.oauthbearer.token.endpoint.url", "sasl.oauthbearer.scope", "sasl.oauthbearer.config"),
    *("ssl.ca.location", "ssl.ca.pem", "ssl.certificate.location", "ssl.certificate.pem"),
    *("ssl.key.location", "ssl.key.password", "ssl.key.pem", "ssl.keystore.location"),
    *("ssl.keystore.password", "ssl.endpoint.identification.algorithm", "ssl.cipher.suites"),
    *("ssl.crl.location", "enable.ssl.certificate.verification", "ssl.providers"),
    *("socket.timeout.ms", "socket.keepalive.enable", "reconnect.backoff.ms"),
    *("reconnect.backoff.max.ms", "metadata.max.age.ms", "topic.metadata.refresh.interval.ms"),
    *("client.dns.lookup", "broker.address.family", "request.timeout.ms", "retry.backoff.ms"),
    *("session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms"),
    *("fetch.max.bytes", "fetch.min.bytes", "fetch.wait.max.ms", "max.partition.fetch.bytes"),
    *("queued.min.messages", "queued.max.messages.kbytes", "partition.assignment.strategy"),
    *("group.protocol", "group.remote.assignor", "linger.ms", "batch.size"),
    *("batch.num.messages", "compression.type", "message.max.bytes"),
    *("message.timeout.ms", "delivery.timeout.ms", "acks", "retries"),
    *("queue.buffering.max.messages", "queue.buffering.max.kbytes"),
    *("transaction.timeout.ms", "statistics.interval.ms", "debug", "log_level"),
)
"""Property names a user sets most (librdkafka's CONFIGURATION.md), for "did you mean"."""


def property_problem(text: str) -> str | None:
    """The one-line problem for librdkafka's refusal ``text`` (a ``KafkaError.str()``) of
    a property at client construction; None when ``text`` is not one."""
    if _JAAS in text:
        return (
            "kafka property sasl.jaas.config: Java JAAS configuration is not supported by "
            "librdkafka; give sasl.mechanism, sasl.username and sasl.password instead "
            "(or SCORING_WORKER_KAFKA_SASL_PASSWORD)"
        )
    unknown = _NO_SUCH.search(text)
    if unknown is not None:
        name = unknown.group(1)
        close = difflib.get_close_matches(name, KNOWN, n=1, cutoff=0.75)
        hint = f"did you mean {close[0]}?" if close else "see librdkafka's CONFIGURATION.md"
        return f"kafka property {name}: no such librdkafka property ({hint})"
    invalid = _INVALID.search(text)
    if invalid is not None:  # the value is not quoted: it may be a secret
        return f"kafka property {invalid.group(1)}: librdkafka refuses its value"
    return None
