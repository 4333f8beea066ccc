"""Plain HTTP reads of a worker's endpoints (/healthz, /readyz, /metrics) and their samples."""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
"""(sample name, sorted labels) -> value, as one scrape of /metrics gives them."""


def http_get(url: str, timeout_s: float = 2.0) -> tuple[int, str]:
    """(status, body) of a GET; an HTTP error is its status with an empty body, and a
    refused or timed-out connection is status 0 (a server not up yet, or gone)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (urllib.error.URLError, OSError):
        return 0, ""


def scrape(url: str) -> Samples:
    """Every sample of the Prometheus text at ``url`` (empty when it does not answer 200)."""
    status, text = http_get(url)
    if status != 200:
        return {}
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found
