"""For the metrics tests: drive a WorkerMetrics, read its registry the way a scraper does."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from model_bundles.bundle import Bundle
from tests.support.scored import score_lines, stream_lines
from worker.monitoring.metrics import WorkerMetrics


def exported(registry: CollectorRegistry) -> dict[str, tuple[str, set[str]]]:
    """Scrape the text exposition: family name as written -> (type, label names).

    prometheus_client writes each counter's and histogram's creation time as an extra
    ``<name>_created`` gauge in this format; those are left out.
    """
    families = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        if family.name.endswith("_created"):
            continue
        name = family.name + "_total" if family.type == "counter" else family.name
        labels = {k for s in family.samples for k in s.labels if k != "le"}
        families[name] = (family.type, labels)
    return families


def series(registry: CollectorRegistry) -> int:
    return sum(len(family.samples) for family in registry.collect())


def value(registry: CollectorRegistry, sample: str, /, **labels: str) -> float:
    found = registry.get_sample_value(sample, labels)
    assert found is not None, (sample, labels)
    return found


def exercise(metrics: WorkerMetrics, bundle: Bundle) -> None:
    """Touch every method so every family has its series."""
    batch = score_lines(bundle, stream_lines(50, seed=3))
    metrics.events_read("events", 50)
    metrics.batch_scored("events", 50, batch, 0.01)
    metrics.delivered(len(batch.records), [1_700_000_000_000] * len(batch.records), 1.7e9)
    metrics.set_lag("events", 0, 12)
    metrics.set_ready(True)
    metrics.parity_checked(50, 0)
    metrics.rolled_back("MSG_SIZE_TOO_LARGE")
    metrics.committed()
    metrics.set_partition_blocked("events", 1, "unstable_offsets")
    metrics.set_hanging({("predictions", 0)})
