"""The rules of librdkafka passthrough properties, for every command (one place).

A property reaches a client from ``SCORING_WORKER_KAFKA_<PROPERTY>`` (upper case, ``.``
written ``_``; ``kafka_environment``) or ``--kafka-property KEY=VALUE``
(``parse_kafka_property``); a key may be scoped with ``consumer.`` or ``producer.`` to reach
only that client (``scoped``). ``check_properties`` refuses a key that is not a property
name and one the worker sets itself (``CONTROLLED``), and keeps the value of every
secret-looking key (``is_secret``) so that no message shows it. Light on purpose (no
pydantic, no confluent_kafka): ``worker.cli.secrets`` uses it before any parsing.

A property a client refused at construction, in our words (issue 28): librdkafka checks
every property when a client is made and raises ``KafkaException``
``_INVALID_ARG`` (``No such configuration property: "sasl.pasword"``, ``Java JAAS
configuration is not supported``...): bad usage (exit 2), not a runtime failure. The
message names the property, never its value (a secret-looking one may be a password),
with the closest property name librdkafka knows when one is close.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal, TypeAlias

from worker.logs import keep_secret

if TYPE_CHECKING:  # pydantic only once a property is checked: `--help` stays light
    from pydantic import SecretStr

ENV_PREFIX = "SCORING_WORKER_"
KAFKA_ENV_PREFIX = ENV_PREFIX + "KAFKA_"
KAFKA_PROPERTY_ENV = KAFKA_ENV_PREFIX + "PROPERTY"
"""The environment form of the repeatable ``--kafka-property`` option (one property a
line), not a librdkafka property."""
SCOPES = ("consumer", "producer")
Scope = Literal["consumer", "producer"]
KafkaValue: TypeAlias = "str | SecretStr"
CONTROLLED = frozenset(
    {
        "bootstrap.servers",
        "group.id",
        "transactional.id",
        "enable.idempotence",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "isolation.level",
        "enable.partition.eof",
        "auto.offset.reset",
        "partition.assignment.strategy",
    }
)
"""Properties the worker sets itself: overriding them would break a delivery guarantee."""
_SECRET = re.compile(r"password|secret|token|credential|private|\.pem$|jaas|oauthbearer\.config")
_KEY_HEAD = re.compile(r"[a-z0-9][a-z0-9._-]*")
_KEY = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def is_secret(key: str) -> bool:
    """True for librdkafka properties whose values must never be printed."""
    return bool(_SECRET.search(key))


def valid_key(key: str) -> bool:
    """True when ``key`` (lower case) has the shape of a librdkafka property name."""
    return bool(_KEY.match(key))


def key_problem(raw_key: str) -> str:
    """Why ``raw_key`` is not a property name, quoting only its valid beginning: a key that
    is not one may be a mistyped ``key value`` pair holding a secret (issue 28)."""
    key = raw_key.strip().lower()
    good = _KEY_HEAD.match(key)
    head = good.group(0) if good else ""
    bad = key[len(head) : len(head) + 1]
    where = f"{head!r} is followed by {bad!r}" if head else "it does not start with a letter"
    return (
        f"a kafka property key is not a librdkafka property name ({where}; the rest is "
        "not shown, it may hold a secret): write KEY=VALUE"
    )


def kafka_key_from_env(name: str) -> str:
    """``SCORING_WORKER_KAFKA_SASL_PASSWORD`` -> ``sasl.password``."""
    return name[len(KAFKA_ENV_PREFIX) :].lower().replace("_", ".")


def kafka_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The properties ``SCORING_WORKER_KAFKA_<PROPERTY>`` variables give (key -> value),
    ``SCORING_WORKER_KAFKA_PROPERTY`` (the option's variable) left out: the one scan."""
    return {
        kafka_key_from_env(name.upper()): value
        for name, value in environ.items()
        if name.upper().startswith(KAFKA_ENV_PREFIX)
        and len(name) > len(KAFKA_ENV_PREFIX)
        and name.upper() != KAFKA_PROPERTY_ENV
    }


def parse_kafka_property(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` from ``--kafka-property``; ValueError naming the problem, never quoting
    the text (a password given as ``sasl.password Hunter2`` would be in it)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(
            f"--kafka-property wants KEY=VALUE; one given ({len(text)} characters) has "
            f"{'no key' if sep else 'no ='} (not shown: it may hold a secret)"
        )
    if not _KEY.match(key.strip().lower()):
        raise ValueError(key_problem(key))
    return key.strip(), value


def unscoped(key: str) -> str:
    """``producer.linger.ms`` -> ``linger.ms``; unscoped keys unchanged."""
    head, _, rest = key.partition(".")
    return rest if head in SCOPES and rest else key


def check_properties(given: Mapping[str, object]) -> dict[str, KafkaValue]:
    """``given`` with lower-case keys, secret-looking values as ``SecretStr`` (and kept:
    any message quoting one masks it); ValueError for a key that is not a property name
    or one the worker sets itself (``CONTROLLED``, scoped or not)."""
    from pydantic import SecretStr

    checked: dict[str, KafkaValue] = {}
    for raw_key, raw in given.items():
        key = str(raw_key).strip().lower()
        if not _KEY.match(key):
            raise ValueError(key_problem(str(raw_key)))
        if unscoped(key) in CONTROLLED:
            raise ValueError(f"kafka property {key!r} is set by scoring-worker itself")
        text = raw.get_secret_value() if isinstance(raw, SecretStr) else str(raw)
        if is_secret(key):
            keep_secret(text)
        checked[key] = SecretStr(text) if is_secret(key) else text
    return checked


def scoped(properties: Mapping[str, KafkaValue], scope: Scope | None) -> dict[str, str]:
    """The properties one client takes, secrets revealed: the unscoped ones, then those
    prefixed ``<scope>.`` (prefix removed); ``scope`` None (an admin client): unscoped only."""
    shared: dict[str, str] = {}
    own: dict[str, str] = {}
    for key, value in properties.items():
        text = value if isinstance(value, str) else value.get_secret_value()
        head, _, rest = key.partition(".")
        if head == scope and rest:
            own[rest] = text
        elif head not in SCOPES:
            shared[key] = text
    return {**shared, **own}


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
