"""TLS and basic auth for the metrics endpoint, from a Prometheus exporter web config file.

The file has the format of the Prometheus exporter toolkit's ``--web.config.file``
(the same file works for node_exporter), of which the worker reads::

    tls_server_config:          # optional: serve HTTPS
      cert_file: /etc/scoring-worker/tls.crt
      key_file: /etc/scoring-worker/tls.key
      client_ca_file: ...       # optional: ask for client certificates signed by it (mTLS)
    basic_auth_users:           # optional: user -> bcrypt hash (htpasswd -nBC 10 "" | tr -d ':')
      prometheus: $2y$10$...

Basic auth guards ``/metrics``; ``/healthz`` and ``/readyz`` answer without it (they tell
only alive/ready, and orchestrator probes rarely send credentials). Other keys of the
file are refused, so a typo does not silently leave the endpoint open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

_TLS_KEYS = {"cert_file", "key_file", "client_ca_file"}


@dataclass(frozen=True)
class WebConfig:
    """What the metrics endpoint serves with: TLS files and basic auth users (bcrypt)."""

    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    _verified: set[tuple[str, bytes]] = field(default_factory=set, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def ssl_context(self) -> ssl.SSLContext | None:
        """A server context (TLS 1.2+), or None for plain HTTP. OSError/SSLError if the
        files cannot be read."""
        if self.cert_file is None or self.key_file is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_file, self.key_file)
        if self.client_ca_file is not None:
            context.load_verify_locations(self.client_ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def authorised(self, header: str | None) -> bool:
        """True when no users are configured, or ``header`` (``Authorization``) names one
        with the right password. A verified pair is remembered (as a SHA-256 of the
        header), so bcrypt's deliberate slowness is paid once per scraper, not per scrape."""
        if not self.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        digest = hashlib.sha256(header.encode()).digest()
        user, _, password = _decode(header[6:])
        with self._lock:
            if (user, digest) in self._verified:
                return True
        hashed = self.users.get(user)
        if hashed is None or not bcrypt.checkpw(password.encode(), hashed):
            return False
        with self._lock:
            self._verified.add((user, digest))
        return True


def _decode(text: str) -> tuple[str, str, str]:
    try:
        return base64.b64decode(text, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", "", ""


def load_web_config(path: Path) -> WebConfig:
    """Read and check a web config file; ValueError naming the problem."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"metrics web config {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"metrics web config {path}: not a mapping")
    unknown = set(raw) - {"tls_server_config", "basic_auth_users"}
    if unknown:
        raise ValueError(f"metrics web config {path}: unsupported keys {sorted(unknown)}")
    tls = _tls(path, raw.get("tls_server_config") or {})
    users = raw.get("basic_auth_users") or {}
    if not isinstance(users, dict) or not all(
        isinstance(h, str) and h.startswith("$2") for h in users.values()
    ):
        raise ValueError(f"metrics web config {path}: basic_auth_users wants user: bcrypt hash")
    return WebConfig(
        cert_file=tls.get("cert_file"),
        key_file=tls.get("key_file"),
        client_ca_file=tls.get("client_ca_file"),
        users={str(u): h.encode() for u, h in users.items()},
    )


def _tls(path: Path, section: Any) -> dict[str, Path]:
    if not isinstance(section, dict) or set(section) - _TLS_KEYS:
        raise ValueError(f"metrics web config {path}: tls_server_config takes {sorted(_TLS_KEYS)}")
    files = {k: (path.parent / str(v)) for k, v in section.items() if v}
    if section and not {"cert_file", "key_file"} <= set(files):
        raise ValueError(
            f"metrics web config {path}: tls_server_config needs cert_file and key_file"
        )
    return files
