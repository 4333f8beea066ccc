"""The worker's HTTP endpoint: ``/metrics``, ``/healthz`` and ``/readyz``.

A small threaded server from the standard library, serving an injected
registry (never the global one). ``/healthz`` answers 200 while ``is_alive()``
holds, ``/readyz`` 200 only while ``is_ready()`` holds, else 503. ``/metrics``
honours the scraper's ``Accept`` header (Prometheus text or OpenMetrics).
Optionally HTTPS and basic auth on ``/metrics`` (``worker.monitoring.webconfig``); the
TLS handshake runs in the request's thread, so a slow client never blocks the others.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from worker.monitoring.webconfig import WebConfig

log = logging.getLogger(__name__)

Probe = Callable[[], bool]
HANDSHAKE_TIMEOUT_S = 10.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        registry: CollectorRegistry,
        alive: Probe,
        ready: Probe,
        web: WebConfig,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.tls = web.ssl_context()  # before binding: unreadable files fail start-up
        super().__init__(address, _Handler)
        self.registry = registry
        self.alive = alive
        self.ready = ready
        self.web = web

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is not None:
            request.settimeout(HANDSHAKE_TIMEOUT_S)
            request = self.tls.wrap_socket(request, server_side=True)
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A failed handshake or a vanished client: noted at debug level, never a traceback."""
        log.debug("metrics request from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    # the do_<METHOD> names and log_message's ``format`` are http.server's

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            if not self.server.web.authorised(self.headers.get("Authorization")):
                self._send(401, b"unauthorized\n", www_authenticate=True)
                return
            self._metrics()
        elif path == "/healthz":
            self._probe(self.server.alive, "alive", "not alive")
        elif path == "/readyz":
            self._probe(self.server.ready, "ready", "not ready")
        else:
            self._send(404, b"not found\n")

    def do_HEAD(self) -> None:
        self.do_GET()

    def _metrics(self) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        try:
            body = encoder(self.server.registry)
        except Exception:
            log.exception("metrics collection failed")
            self._send(500, b"metrics collection failed\n")
            return
        self._send(200, body, content_type)

    def _probe(self, probe: Probe, yes: str, no: str) -> None:
        try:
            ok = probe()
        except Exception:
            log.exception("%s probe failed", self.path)
            ok = False
        self._send(200 if ok else 503, f"{yes if ok else no}\n".encode())

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "text/plain; charset=utf-8",
        www_authenticate: bool = False,
    ) -> None:
        self.send_response(status)
        if www_authenticate:
            self.send_header("WWW-Authenticate", 'Basic realm="scoring-worker"')
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Nothing per request: scrapes every few seconds would flood the log."""


@dataclass
class HttpHandle:
    """A running server: ``port`` is the bound one (useful with port 0)."""

    host: str
    port: int
    _server: _Server
    _thread: threading.Thread

    def close(self) -> None:
        """Stop serving and release the socket; safe to call twice."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> HttpHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(
    registry: CollectorRegistry,
    host: str,
    port: int,
    is_alive: Probe,
    is_ready: Probe,
    web: WebConfig | None = None,
) -> HttpHandle:
    """Serve in a daemon thread; port 0 picks a free port. ``web``: TLS and basic auth
    (None: plain HTTP, no auth). OSError if it cannot bind or read the TLS files."""
    server = _Server((host, port), registry, is_alive, is_ready, web or WebConfig())
    thread = threading.Thread(
        target=server.serve_forever, name="metrics-http", kwargs={"poll_interval": 0.2}, daemon=True
    )
    thread.start()
    bound_port = int(server.server_address[1])
    return HttpHandle(host, bound_port, server, thread)
