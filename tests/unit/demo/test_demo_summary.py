"""`make demo`'s summary counts what was delivered (issue 28, item 12).

The summary used to read the workers' counters as soon as every event was consumed,
before the last batches were committed: "50000 published, 48119 predictions, 403 dead
letters" while the output topic held 49,585 records. ``examples.demo.delivered`` waits
until predictions plus dead letters reach the events published.
"""

from __future__ import annotations

import pytest

from examples.demo import delivered
from examples.stack import Samples

PRODUCED = "scoring_predictions_produced_total"
REJECTED = "scoring_events_rejected_total"


class Replica:
    """A worker whose counters move on at each scrape, as its batches commit."""

    def __init__(self, steps: list[tuple[float, float]]) -> None:
        self.steps = steps
        self.scrapes = 0

    def samples(self) -> Samples:
        produced, rejected = self.steps[min(self.scrapes, len(self.steps) - 1)]
        self.scrapes += 1
        return {
            (PRODUCED, ()): produced,
            (REJECTED, (("reason", "invalid_json"),)): rejected,
            ("scoring_events_consumed_total", (("topic", "events"),)): 25_000.0,
        }


def test_the_summary_waits_for_the_last_batches_to_be_delivered() -> None:
    # both replicas consumed all 25,000 of theirs; the last batches commit a scrape later
    workers = [
        Replica([(24_000, 200), (24_000, 200), (24_800, 200)]),
        Replica([(24_119, 203), (24_785, 215), (24_785, 215)]),
    ]
    samples = delivered(workers, 50_000, deadline_s=30)
    produced = sum(s[(PRODUCED, ())] for s in samples)
    rejected = sum(v for s in samples for (name, _), v in s.items() if name == REJECTED)
    assert (produced, rejected) == (49_585, 415)
    assert all(w.scrapes == 3 for w in workers)


def test_counters_that_never_settle_fail_naming_them() -> None:
    workers = [Replica([(48_119, 403)])]
    with pytest.raises(SystemExit, match=r"deliver all 50000 events.*48119 predictions, 403 dead"):
        delivered(workers, 50_000, deadline_s=0.5)
