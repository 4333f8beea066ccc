"""A worker that cannot deliver is visible in /metrics (issue 19, case 1), on the real broker.

The output topic takes messages of at most 200 bytes, so no prediction record fits and
every transaction fails (MSG_SIZE_TOO_LARGE). The dead-letter topic refuses them as well,
so that however the worker ends such a batch (retrying, routing refused records to the
DLQ, giving up after some rollbacks), it cannot deliver. While that lasts the metrics
must say so: lag 300 on partition 0, rolled-back transactions counted by reason, the
seconds since the last commit growing, events read counted, nothing produced, not ready.

/metrics is scraped every few milliseconds from the worker's start, so the state is seen
however briefly it lasts; it must show within one Prometheus scrape interval
(deploy/prometheus/prometheus.yml) of the first rollback the worker logs.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime
from pathlib import Path

from kafka_broker import TopicFactory, poll_until
from prometheus_client.parser import text_string_to_metric_families
from worker_harness import Topics, WorkerProcess, make_stream, produce_stream, stop_all

from harness.http import http_get
from harness.ports import free_port

REPO = Path(__file__).resolve().parents[2]
EVENTS = 300
LIMIT = {"max.message.bytes": "200"}
Figures = dict[str, float]


def scrape_interval_s() -> float:
    config = (REPO / "deploy/prometheus/prometheus.yml").read_text()
    found = re.search(r"^\s+scrape_interval:\s*(\d+)s\s*$", config, re.MULTILINE)
    assert found is not None, "no global scrape_interval in seconds"
    return float(found.group(1))


def figures(text: str, topic: str) -> Figures:
    found: Figures = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "scoring_consumer_lag" and s.labels == {"topic": topic, "partition": "0"}:
                found["lag"] = s.value
            elif s.name == "scoring_transactions_rolled_back_total":
                found["rolled_back"] = found.get("rolled_back", 0.0) + s.value
                found[f"reason:{s.labels['reason']}"] = s.value
            elif s.name in (
                "scoring_events_consumed_total",
                "scoring_predictions_produced_total",
                "scoring_seconds_since_last_commit",
                "scoring_ready",
            ):
                found[s.name] = s.value
    return found


def stuck(found: Figures) -> bool:
    return (
        found.get("lag") == EVENTS
        and found.get("rolled_back", 0) >= 1
        and found.get("scoring_ready") == 0
        and found.get("scoring_events_consumed_total") == EVENTS
        and found.get("scoring_predictions_produced_total") == 0
    )


class Scraper(threading.Thread):
    """Scrapes /metrics every 20 ms, keeping (wall-clock time, figures) of each answer."""

    def __init__(self, port: int, topic: str) -> None:
        super().__init__(name="scraper", daemon=True)
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.topic = topic
        self.scrapes: list[tuple[float, Figures]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            status, text = http_get(self.url, timeout_s=2)
            if status == 200:
                self.scrapes.append((time.time(), figures(text, self.topic)))
            self.done.wait(0.02)

    def first_stuck(self) -> tuple[float, Figures] | None:
        return next(((t, f) for t, f in list(self.scrapes) if stuck(f)), None)


def test_a_worker_that_cannot_deliver_shows_it_within_one_scrape_interval(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    topics = Topics(
        input=topic_factory(1), output=topic_factory(1, LIMIT), dlq=topic_factory(1, LIMIT)
    )
    produce_stream(bootstrap, topics.input, make_stream(tmp_path, EVENTS, seed=19))
    port = free_port()
    http = ("--metrics-host", "127.0.0.1", "--metrics-port", str(port))
    worker = WorkerProcess(bootstrap, topics, tmp_path, "stuck", *http)
    scraper = Scraper(port, topics.input)
    scraper.start()
    try:
        rollback = worker.events("rolled_back") or [worker.wait_event("rolled_back", 120)]
        rolled_back_at = datetime.fromisoformat(rollback[0]["ts"]).timestamp()
        try:
            shown_at, state = poll_until("the stuck state to show", 60, scraper.first_stuck)
        except TimeoutError as exc:
            last = scraper.scrapes[-1:] if scraper.scrapes else "no scrape"
            log = worker.log_path.read_text()[-1500:]
            raise AssertionError(f"{exc}; last scrape {last}; log: {log}") from None
    finally:
        scraper.done.set()
        stop_all([worker])
    shown_after_s = shown_at - rolled_back_at
    print(f"stuck state shown {shown_after_s:.3f}s after the first rollback: {state}")
    assert shown_after_s <= scrape_interval_s()
    assert state["reason:msg_size_too_large"] >= 1, state
    assert state["scoring_seconds_since_last_commit"] > 0
