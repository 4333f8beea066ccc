"""The metrics endpoint with an exporter web config file: HTTPS and basic auth, for real."""

from __future__ import annotations

import base64
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
from prometheus_client import CollectorRegistry, Counter

from worker.monitoring.http import HttpHandle, serve
from worker.monitoring.webconfig import WebConfig, load_web_config

PASSWORD = "correct horse"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA and a server certificate for 127.0.0.1 it signed (openssl)."""
    d = tmp_path_factory.mktemp("tls")
    run = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subprocess.run([*run, "-subj", "/CN=test CA", "-keyout", d / "ca.key", "-out", d / "ca.pem"],
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=worker",
                    "-keyout", d / "tls.key", "-out", d / "tls.csr"],
                   check=True, capture_output=True)  # fmt: skip
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    subprocess.run(["openssl", "x509", "-req", "-in", d / "tls.csr", "-CA", d / "ca.pem", "-CAkey",
                    d / "ca.key", "-CAcreateserial", "-days", "1", "-extfile", d / "ext",
                    "-out", d / "tls.crt"], check=True, capture_output=True)  # fmt: skip
    return d


def _config(directory: Path, text: str) -> WebConfig:
    path = directory / "web.yml"
    path.write_text(text)
    return load_web_config(path)


def _hash() -> str:
    # htpasswd writes $2y$; Prometheus' docs too
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$")


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("scoring_demo", "a metric", registry=registry).inc()
    return registry


def _serve(registry: CollectorRegistry, web: WebConfig) -> Iterator[HttpHandle]:
    handle = serve(registry, "127.0.0.1", 0, lambda: True, lambda: True, web)
    yield handle
    handle.close()


def get(url: str, auth: str | None = None, ca: Path | None = None) -> int:
    request = urllib.request.Request(url)
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        assert error.code != 401 or error.headers["WWW-Authenticate"].startswith("Basic ")
        return error.code


def test_basic_auth_guards_metrics_but_not_the_probes(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    web = _config(tmp_path, f"basic_auth_users:\n  prometheus: '{_hash()}'\n")
    for handle in _serve(registry, web):
        url = f"http://127.0.0.1:{handle.port}"
        assert get(url + "/metrics") == 401
        assert get(url + "/metrics", "prometheus:wrong") == 401
        assert get(url + "/metrics", "nobody:" + PASSWORD) == 401
        assert get(url + "/metrics", "prometheus:" + PASSWORD) == 200
        assert get(url + "/metrics", "prometheus:" + PASSWORD) == 200  # remembered
        assert get(url + "/healthz") == 200 and get(url + "/readyz") == 200


def test_tls_serves_https_only(tls_files: Path, registry: CollectorRegistry) -> None:
    web = _config(tls_files, "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n")
    for handle in _serve(registry, web):
        assert get(f"https://127.0.0.1:{handle.port}/metrics", ca=tls_files / "ca.pem") == 200
        with pytest.raises(urllib.error.URLError):  # the same CA check a scraper does
            get(f"https://127.0.0.1:{handle.port}/metrics", ca=tls_files / "tls.crt")
        with socket.create_connection(("127.0.0.1", handle.port), timeout=5) as plain:
            plain.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"scoring_demo" not in _read(plain)
        # the server still answers after those failures
        assert get(f"https://127.0.0.1:{handle.port}/healthz", ca=tls_files / "ca.pem") == 200


def _read(sock: socket.socket) -> bytes:
    try:
        return sock.recv(4096)
    except ConnectionResetError:  # the server gave up the handshake
        return b""


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("basic_auth_user:\n  a: b\n", "unsupported keys"),
        ("tls_server_config:\n  cert_file: a.crt\n", "needs cert_file and key_file"),
        ("tls_server_config:\n  certfile: a.crt\n", "tls_server_config takes"),
        ("basic_auth_users:\n  a: plaintext\n", "bcrypt"),
        ("- a list\n", "not a mapping"),
    ],
)
def test_a_wrong_config_is_refused_with_the_reason(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        _config(tmp_path, text)


def test_no_config_means_plain_http_without_auth(registry: CollectorRegistry) -> None:
    for handle in _serve(registry, WebConfig()):
        assert get(f"http://127.0.0.1:{handle.port}/metrics") == 200
