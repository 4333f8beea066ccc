"""Loopback ports for the servers a test or the demo starts (metrics, registries, brokers)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago.

    The port is released before it is returned, so another process may take it first: the
    server that binds it reports that as its own error (the usual race of this idiom).
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
