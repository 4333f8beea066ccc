"""Challengers: every batch scored by other bundles too, in the champion's transaction.

``run --challenger DIR --challenger-topic C`` (SPEC.md "Champion and challenger"). The
loop hands each scored batch to ``Challengers.messages``; the records it returns join
the champion's records, dead letters and offsets in one ``DeliveryBatch``, so a
read_committed reader of ``C`` sees exactly one record per event valid for the champion
and challenger, across crashes and rebalances, as for the champion. Nothing here
changes the champion's records.

Which events a challenger scores: exactly those the champion accepted (valid for the
champion), in batch order, as the same ``InputEvent`` objects, so a challenger record
has the same key, id and ``source`` as the champion's and its own ``model`` block.
Events the champion rejects go to the DLQ once, by the champion, and are not scored by
challengers. A champion-valid event a challenger rejects (its feature list or types
differ) is counted per challenger and reason (``rejected``, the log's ``challengers``
line, ``scoring_challenger_rejected_total``) and sent nowhere: no second dead letter.

Metrics are reported only once a batch is delivered (``delivered``): a rolled-back
batch is scored again and must not count twice.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy.typing as npt

from model_bundles.errors import BadInputError
from model_bundles.predict import Outputs
from worker.core.scoring import BatchScorer, InputEvent, ScoredBatch
from worker.kafka.types import Outgoing
from worker.live.loop import HEADER_INSTANCE, HEADER_SCORED_AT


class ChallengerObserver(Protocol):
    """Where delivered challenger batches are reported (``ChallengerMetrics``)."""

    def challenger_batch(
        self,
        name: str,
        champion: npt.NDArray[Any],
        challenger: Outputs,
        rejected: Counter[str],
        duration_s: float,
    ) -> None:
        """``champion``: the champion's predictions of the events the challenger scored,
        row-aligned with ``challenger``; ``rejected``: champion-valid events it refused."""


@dataclass(frozen=True, slots=True)
class _Pending:
    name: str
    champion: npt.NDArray[Any]
    outputs: Outputs
    produced: int
    rejected: Counter[str]
    duration_s: float


def challenger_name(scorer: BatchScorer) -> str:
    """The ``challenger`` label: ``name@version`` of the bundle."""
    manifest = scorer.bundle.manifest
    return f"{manifest.name}@{manifest.version}"


class Challengers:
    """The challengers of one worker, and what they scored in the batch not yet delivered."""

    def __init__(
        self,
        champion: BatchScorer,
        scorers: Sequence[BatchScorer],
        topic: str,
        instance_id: str,
        observer: ChallengerObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_challengers(champion, scorers)
        self.scorers = {challenger_name(s): s for s in scorers}
        self.topic = topic
        self.instance_id = instance_id.encode()
        self.observer = observer
        self.clock = clock
        self.produced: Counter[str] = Counter()
        self.rejected: Counter[tuple[str, str]] = Counter()
        self._pending: list[_Pending] = []

    @property
    def topics(self) -> tuple[str, ...]:
        """Topics the worker must find at start-up."""
        return (self.topic,)

    def messages(self, events: Sequence[InputEvent], scored: ScoredBatch) -> list[Outgoing]:
        """Every challenger's records for the champion-valid events of the batch."""
        self._pending = []
        valid = [events[i] for i in scored.indices]
        if not valid:
            return []
        headers = [  # as the champion's records carry them (worker.live.loop)
            (HEADER_INSTANCE, self.instance_id),
            (HEADER_SCORED_AT, str(int(time.time() * 1000)).encode()),
        ]
        out: list[Outgoing] = []
        for name, scorer in self.scorers.items():
            started = self.clock()
            mine = scorer.score(valid)
            duration_s = self.clock() - started
            out += [
                Outgoing(self.topic, record, valid[j].key, headers)
                for j, record in zip(mine.indices, mine.records, strict=True)
            ]
            reasons = Counter(r.rejection.reason.value for r in mine.rejected)
            champion = scored.outputs.predictions[mine.indices]
            self._pending.append(
                _Pending(name, champion, mine.outputs, len(mine.records), reasons, duration_s)
            )
        return out

    def delivered(self) -> None:
        """The batch given to ``messages`` was committed: count it and report it."""
        for p in self._pending:
            self.produced[p.name] += p.produced
            self.rejected.update({(p.name, reason): n for reason, n in p.rejected.items()})
            if self.observer is not None:
                self.observer.challenger_batch(
                    p.name, p.champion, p.outputs, p.rejected, p.duration_s
                )
        self._pending = []

    def summary(self) -> dict[str, Any]:
        """Per challenger: records produced and champion-valid events rejected, by reason."""
        return {
            name: {
                "produced": self.produced[name],
                "rejected": {r: n for (c, r), n in sorted(self.rejected.items()) if c == name},
            }
            for name in self.scorers
        }


def check_challengers(champion: BatchScorer, scorers: Sequence[BatchScorer]) -> None:
    """Same task and labels as the champion, each bundle once (BadInputError otherwise)."""
    digests = {champion.bundle.digest: "the champion"}
    first = champion.bundle.manifest
    for scorer in scorers:
        manifest = scorer.bundle.manifest
        name = challenger_name(scorer)
        if manifest.digest in digests:
            raise BadInputError(
                f"challenger {name} is the same bundle as {digests[manifest.digest]}"
            )
        digests[manifest.digest] = f"challenger {name}"
        if manifest.task != first.task:
            raise BadInputError(
                f"challenger {name} is a {manifest.task} bundle, the champion a {first.task} one"
            )
        if [str(c) for c in manifest.classes or ()] != [str(c) for c in first.classes or ()]:
            raise BadInputError(f"challenger {name} predicts other labels than the champion")
    names = [challenger_name(s) for s in scorers]
    if len(set(names)) != len(names):
        raise BadInputError("two challengers share a name@version; the metrics could not tell")
