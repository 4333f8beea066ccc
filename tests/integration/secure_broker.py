"""The local broker's SASL_SSL and mTLS listeners (scripts/kafka-local with
KAFKA_SASL_SSL_PORT): its client.json, topics under the prefixes its ACLs grant, and
worker settings."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from kafka_broker import create_topic, unique_topic
from worker_harness import REPO, Topics


@dataclass(frozen=True)
class SecureBroker:
    bootstrap: str
    ca: Path
    passwords: dict[str, str]
    prefixes: dict[str, str]
    mtls: dict[str, str]

    def topics(self, plaintext: str, partitions: int = 2) -> Topics:
        """Fresh input/output/DLQ topics (made on the PLAINTEXT listener) and group."""
        p = self.prefixes
        names = [unique_topic(p[k].rstrip("-")) for k in ("input", "output", "dlq")]
        for name in names:
            create_topic(plaintext, name, partitions)
        return Topics(*names, group=unique_topic(p["group"] + "g"))

    def env(self, user: str, password: str | None = None, ca: Path | None = None) -> dict[str, str]:
        """``SCORING_WORKER_KAFKA_*`` for SASL_SSL/SCRAM as ``user``."""
        return {
            "SCORING_WORKER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "SCORING_WORKER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "SCORING_WORKER_KAFKA_SASL_USERNAME": user,
            "SCORING_WORKER_KAFKA_SASL_PASSWORD": password or self.passwords[user],
            "SCORING_WORKER_KAFKA_SSL_CA_LOCATION": str(ca or self.ca),
        }

    def mtls_properties(self, certificate: bool = True) -> list[str]:
        """``--kafka-property`` values for the mTLS listener (``ssl.client.auth=required``),
        as the client certificate's principal (User:scoring); ``certificate=False``: none."""
        props = ["security.protocol=SSL", f"ssl.ca.location={self.ca}"]
        if certificate:
            props += [f"ssl.certificate.location={self.mtls['certificate']}"]
            props += [f"ssl.key.location={self.mtls['key']}"]
        return props


def secure_broker() -> SecureBroker:
    """The listener's client.json; skipped when the broker runs without SASL_SSL mode."""
    cache = Path(os.environ.get("KAFKA_CACHE_DIR") or REPO / ".cache" / "kafka")
    path = Path(os.environ.get("KAFKA_SECURITY_DIR") or cache / "security") / "client.json"
    port = os.environ.get("KAFKA_SASL_SSL_PORT", "").strip()
    if not path.is_file():
        if not port:
            pytest.skip("KAFKA_SASL_SSL_PORT is not set: the broker has no SASL_SSL listener")
        pytest.fail(f"{path} missing: run `make kafka-up` (KAFKA_SASL_SSL_PORT={port})")
    info = orjson.loads(path.read_bytes())
    if port and not info["bootstrap"].endswith(f":{port}"):
        pytest.fail(f"{path} is for {info['bootstrap']}, not port {port}: run `make kafka-up`")
    if "mtls" not in info:
        pytest.fail(f"{path} has no mTLS listener: run `make kafka-down kafka-up`")
    ca = Path(info["ca"])
    return SecureBroker(info["bootstrap"], ca, info["users"], info["prefixes"], info["mtls"])


def untrusted_ca(directory: Path) -> Path:
    """A CA certificate that did not sign the broker's (openssl)."""
    key, cert = directory / "rogue.key", directory / "rogue.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=not the broker's CA", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert
