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
An event a challenger's pipeline raises on alone is such a reject, reason
``model_error`` (``worker.core.model_errors``).

A challenger never stops the champion (docs/evaluate.md, "A challenger that fails never
stops the champion"): when its circuit rule opens (``ModelFailure``: its golden sample
fails too, or every event of several batches in a row raised the same exception), the
champion's outcome would be exit 3; a challenger's is to be *disabled* for the rest of
the run. The batch's champion-valid events count as its ``model_error`` rejects (each
of them raised), one ``challenger_disabled`` log line names its digest and the
exception, the observer sets ``scoring_challenger_disabled``, and it scores nothing
more; the champion's records, dead letters and offsets flow on. A challenger that hangs
is a hang of the worker: the loop scores it inside the watchdog's batch
(``worker.live.watchdog``).

Metrics are reported only once a batch is delivered (``delivered``): a rolled-back
batch is scored again and must not count twice. Disabling is not undone by a rollback.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy.typing as npt

from model_bundles.predict import Outputs
from schemas.errors import BadInputError
from schemas.wire_names import HEADER_INSTANCE, HEADER_SCORED_AT, RejectReason
from worker.core.events import InputEvent
from worker.core.model_errors import ModelFailure
from worker.core.scoring import BatchScorer, ScoredBatch
from worker.kafka.types import Outgoing
from worker.logs import EventLog


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

    def challenger_disabled(self, name: str) -> None:
        """The challenger's circuit opened: it scores nothing more in this run."""


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
        log: EventLog | None = None,
    ) -> None:
        check_challengers(champion, scorers)
        self.scorers = {challenger_name(s): s for s in scorers}
        self.topic = topic
        self.instance_id = instance_id.encode()
        self.observer = observer
        self.clock = clock
        self.log = log
        self.disabled: dict[str, str] = {}
        """Challengers whose circuit opened, with the ``ModelFailure`` line."""
        self.produced: Counter[str] = Counter()
        self.rejected: Counter[tuple[str, str]] = Counter()
        self._pending: list[_Pending] = []

    @property
    def topics(self) -> tuple[str, ...]:
        """Topics the worker must find at start-up."""
        return (self.topic,)

    @property
    def isolating_calls(self) -> int:
        """Model calls the challengers made isolating failing events, ever: progress for
        the watchdog, as the champion's (``BatchScorer.isolating_calls``)."""
        return sum(s.isolating_calls for s in self.scorers.values())

    def messages(
        self, events: Sequence[InputEvent], scored: ScoredBatch
    ) -> tuple[list[Outgoing], list[InputEvent]]:
        """Every challenger's records for the champion-valid events of the batch, and the
        input event of each."""
        self._pending = []
        valid = [events[i] for i in scored.indices]
        if not valid:
            return [], []
        headers = [  # as the champion's records carry them (worker.live.loop)
            (HEADER_INSTANCE, self.instance_id),
            (HEADER_SCORED_AT, str(int(time.time() * 1000)).encode()),
        ]
        out: list[Outgoing] = []
        sources: list[InputEvent] = []
        for name, scorer in self.scorers.items():
            if name in self.disabled:
                continue
            started = self.clock()
            try:
                mine = scorer.score(valid)
            except ModelFailure as exc:  # the challenger's fault: never the champion's stop
                self._disable(name, scorer, exc)
                reasons = Counter({RejectReason.MODEL_ERROR.value: len(valid)})
                champion = scored.outputs.predictions[:0]
                nothing = Outputs(champion, None, decision=scored.outputs.decision)
                duration_s = self.clock() - started
                self._pending.append(_Pending(name, champion, nothing, 0, reasons, duration_s))
                continue
            duration_s = self.clock() - started
            out += [
                Outgoing(self.topic, record, valid[j].key, headers)
                for j, record in zip(mine.indices, mine.records, strict=True)
            ]
            sources += [valid[j] for j in mine.indices]
            reasons = Counter(r.rejection.reason.value for r in mine.rejected)
            champion = scored.outputs.predictions[mine.indices]
            self._pending.append(
                _Pending(name, champion, mine.outputs, len(mine.records), reasons, duration_s)
            )
        return out, sources

    def _disable(self, name: str, scorer: BatchScorer, failure: ModelFailure) -> None:
        """Circuit open: every event of the batch raised in this challenger (module docstring)."""
        self.disabled[name] = str(failure)
        if self.log is not None:
            self.log.emit(
                "challenger_disabled",
                level="error",
                challenger=name,
                digest=scorer.bundle.manifest.digest,
                error=str(failure),
            )
        if self.observer is not None:
            self.observer.challenger_disabled(name)

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
        """Per challenger: records produced and champion-valid events rejected, by reason;
        ``disabled``, the ``ModelFailure`` line, for a challenger whose circuit opened."""
        out: dict[str, Any] = {}
        for name in self.scorers:
            out[name] = {
                "produced": self.produced[name],
                "rejected": {r: n for (c, r), n in sorted(self.rejected.items()) if c == name},
            }
            if name in self.disabled:
                out[name]["disabled"] = self.disabled[name]
        return out


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
