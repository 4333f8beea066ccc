"""The metrics/health HTTP server, over real HTTP on the loopback interface."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from model_bundles.bundle import Bundle
from worker.monitoring.drift import DriftSettings
from worker.monitoring.http import HttpHandle, serve
from worker.monitoring.metrics import WorkerMetrics


def get(handle: HttpHandle, path: str, accept: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{handle.port}{path}")
    if accept:
        request.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


@pytest.fixture
def metrics(penguins_bundle: Bundle) -> WorkerMetrics:
    return WorkerMetrics(CollectorRegistry(), penguins_bundle, DriftSettings())


@pytest.fixture
def alive() -> list[bool]:
    return [True]


@pytest.fixture
def server(metrics: WorkerMetrics, alive: list[bool]) -> Iterator[HttpHandle]:
    handle = serve(metrics.registry, "127.0.0.1", 0, lambda: alive[0], metrics.is_ready)
    yield handle
    handle.close()


def test_metrics_endpoint_serves_the_injected_registry(server: HttpHandle) -> None:
    assert server.port > 0
    status, content_type, body = get(server, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    assert "# TYPE scoring_prediction_bin_total counter" in body
    assert 'scoring_drift_psi_threshold{severity="critical"} 0.25' in body
    assert "python_gc_objects_collected_total" not in body  # not the global registry


def test_metrics_endpoint_speaks_openmetrics_when_asked(server: HttpHandle) -> None:
    status, content_type, body = get(server, "/metrics", "application/openmetrics-text")
    assert status == 200
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith("# EOF\n")


def test_readyz_is_503_until_ready_then_200(server: HttpHandle, metrics: WorkerMetrics) -> None:
    assert get(server, "/readyz")[0] == 503
    metrics.set_ready(True)
    assert get(server, "/readyz")[0] == 200
    metrics.set_ready(False)
    assert get(server, "/readyz")[0] == 503


def test_healthz_follows_is_alive(server: HttpHandle, alive: list[bool]) -> None:
    assert get(server, "/healthz")[0] == 200
    alive[0] = False
    assert get(server, "/healthz")[0] == 503


def test_unknown_path_is_404(server: HttpHandle) -> None:
    assert get(server, "/nope")[0] == 404


def test_a_failing_probe_is_not_ready(metrics: WorkerMetrics) -> None:
    def broken() -> bool:
        raise RuntimeError("boom")

    with serve(metrics.registry, "127.0.0.1", 0, broken, broken) as handle:
        assert get(handle, "/healthz")[0] == 503
        assert get(handle, "/readyz")[0] == 503


def test_close_releases_the_port(metrics: WorkerMetrics) -> None:
    handle = serve(metrics.registry, "127.0.0.1", 0, lambda: True, lambda: True)
    port = handle.port
    handle.close()
    handle.close()  # twice is fine
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
    with pytest.raises(OSError), socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        taken.listen()
        serve(metrics.registry, "127.0.0.1", busy, lambda: True, lambda: True)
