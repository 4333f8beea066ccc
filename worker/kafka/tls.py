"""Why a broker's TLS certificate is refused: its CA, or the name it was reached by.

librdkafka reports both as ``certificate verify failed ... verify that ssl.ca.location is
correctly configured``; when the CA is right and only the name is wrong (the worker given
``vm:9094``, the certificate naming ``localhost`` and ``127.0.0.1``), that line sends the
user to the wrong setting (issue 28). One TLS handshake per bootstrap server, made here
with the same CA, tells them apart: if the chain verifies without the name check, the
name is the problem, and the message says which names the certificate holds.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Mapping
from typing import Any

TLS_PROTOCOLS = ("ssl", "sasl_ssl")


def certificate_name_problem(config: Mapping[str, Any], timeout_s: float = 5.0) -> str | None:
    """A one-line explanation when a bootstrap server of ``config`` (librdkafka properties)
    presents a certificate its CA verifies but whose names do not include the host it was
    reached by; None otherwise (no TLS, name check off, no answer, or another problem:
    librdkafka reports those)."""
    protocol = str(config.get("security.protocol", "plaintext")).lower()
    check = str(config.get("ssl.endpoint.identification.algorithm", "https")).lower()
    if protocol not in TLS_PROTOCOLS or check == "none":
        return None
    ca = config.get("ssl.ca.location")
    for server in str(config.get("bootstrap.servers", "")).split(","):
        host, _, port = server.strip().rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit():
            continue
        names = _names_if_misnamed(host, int(port), str(ca) if ca else None, timeout_s)
        if names is not None:
            shown = ", ".join(names) or "none"
            return (
                f"the broker certificate at {server.strip()} does not name {host!r} "
                f"(its subjectAltName: {shown}); the CA ({ca or 'the system store'}) is "
                "right: connect by a name the certificate holds (--bootstrap-servers and "
                "the broker's advertised.listeners), or have it reissued with this one"
            )
    return None


def _names_if_misnamed(host: str, port: int, ca: str | None, timeout_s: float) -> list[str] | None:
    """The certificate's names when its chain verifies but ``host`` is not among them."""
    try:
        context = _context(ca)
        context.check_hostname = False  # the chain only; the name is checked below
        with (
            socket.create_connection((host, port), timeout=timeout_s) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            cert = tls.getpeercert()
    except (OSError, ssl.SSLError, ValueError):
        return None  # unreachable, or the chain itself fails: not a name problem
    if not cert:
        return None
    names = [f"{entry[0]} {entry[1]}" for entry in cert.get("subjectAltName", ())]
    try:  # the full check, as librdkafka makes it (ssl.endpoint.identification.algorithm)
        with (
            socket.create_connection((host, port), timeout=timeout_s) as raw,
            _context(ca).wrap_socket(raw, server_hostname=host),
        ):
            return None
    except ssl.SSLCertVerificationError:
        return names
    except (OSError, ssl.SSLError, ValueError):
        return None


def _context(ca: str | None) -> ssl.SSLContext:
    """A verifying context trusting ``ca`` (a file or a directory; None: the system's)."""
    if ca and os.path.isdir(ca):
        return ssl.create_default_context(capath=ca)
    return ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
