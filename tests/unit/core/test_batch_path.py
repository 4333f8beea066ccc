"""The column-wise batch path agrees with the per-event definitions it replaces.

``check_batch`` must give ``check_event``'s verdict and detail for every event and
``events_to_frame``'s frame for the accepted ones; ``RecordEncoder`` must give
``encode_one``'s bytes (orjson of the record dict) for every record.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from model_bundles.bundle import Bundle
from model_bundles.events import check_batch, check_event, events_to_frame
from model_bundles.predict import Outputs
from schemas.manifest import FeatureSpec
from schemas.wire_names import RejectReason
from worker.core.encoding import RecordEncoder, encode_one
from worker.core.events import InputEvent
from worker.core.scoring import BatchScorer


class _Text(str):
    """A str subclass: valid for check_event, never taken on the column-wise fast path."""


_ABSENT = object()
CATEGORIES = ["Biscoe", "Dream", "Torgersen"]
numbers = (
    st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([math.nan, math.inf, -math.inf])
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([2**1024, -(2**1024), 2**1024 - 2**970, 2**1024 - 2**970 - 1, 2**63 + 1])
    | st.builds(np.float64, st.floats(allow_nan=False))
)
values = (
    st.none()
    | st.booleans()
    | numbers
    | st.sampled_from([*CATEGORIES, "Anvers", ""])
    | st.text(max_size=4)
    | st.builds(_Text, st.sampled_from(CATEGORIES))
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(max_size=2), st.integers(), max_size=1)
    | st.just(_ABSENT)
)
features = st.lists(
    st.builds(
        lambda kind, nullable: (kind, nullable),
        st.sampled_from(["numeric", "categorical"]),
        st.booleans(),
    ),
    min_size=1,
    max_size=4,
).map(
    lambda specs: [
        FeatureSpec(
            name=f"f{i}",
            kind=kind,
            dtype="float64" if kind == "numeric" else "object",
            nullable=nullable,
            categories=CATEGORIES if kind == "categorical" else None,
        )
        for i, (kind, nullable) in enumerate(specs)
    ]
)


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[FeatureSpec], list[dict[str, Any]]]:
    specs = draw(features)
    # mostly plainly valid events, so that whole columns take the fast path
    plain = {
        "numeric": st.floats(-1e6, 1e6) | st.integers(-(10**6), 10**6),
        "categorical": st.sampled_from([*CATEGORIES, "Anvers"]),
    }
    # per column, what its odd values are: the fast path sees columns of numbers only
    # (NaN, infinities, integers beyond float64) or nulls only, the slow path the rest
    wild = {f.name: draw(st.sampled_from([numbers, st.none(), values])) for f in specs}
    events = []
    for _ in range(draw(st.integers(0, 12))):
        event: dict[str, Any] = {"event_id": "e"}
        for f in specs:
            value = draw(plain[f.kind] if draw(st.integers(0, 3)) else wild[f.name])
            if value is not _ABSENT:
                event[f.name] = value
        events.append(event)
    return specs, events


def _same_column(got: pd.Series, want: pd.Series) -> bool:
    if got.dtype != want.dtype:
        return False
    if got.dtype == np.float64:
        return got.to_numpy().tobytes() == want.to_numpy().tobytes()
    return all(a is b or a == b for a, b in zip(got.tolist(), want.tolist(), strict=True))


@settings(max_examples=400, deadline=None)
@given(batches())
def test_check_batch_agrees_with_check_event_and_events_to_frame(
    batch: tuple[list[FeatureSpec], list[dict[str, Any]]],
) -> None:
    specs, events = batch
    verdicts = [check_event(e, specs) for e in events]
    checked = check_batch(events, specs)

    assert checked.rejected == [(i, r) for i, r in enumerate(verdicts) if r is not None]
    assert checked.accepted == [i for i, r in enumerate(verdicts) if r is None]
    accepted = [events[i] for i in checked.accepted]
    want = events_to_frame(accepted, specs)
    assert list(checked.frame.columns) == list(want.columns)
    assert all(_same_column(checked.frame[c], want[c]) for c in want.columns)
    unknown = {
        f.name: n
        for f in specs
        if f.kind == "categorical"
        and (n := sum(1 for e in accepted if e[f.name] is not None and e[f.name] not in CATEGORIES))
    }
    assert checked.unknown_categories == unknown


def test_an_integer_beyond_float64_is_non_finite_and_the_batch_still_scores(
    penguins_bundle: Bundle,
) -> None:
    good = {
        "bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181,
        "body_mass_g": 3750, "island": "Torgersen", "sex": "male",
    }  # fmt: skip
    huge = orjson.dumps(good).replace(b"3750", b"1" + b"0" * 400)  # orjson refuses, json reads
    batch = BatchScorer(penguins_bundle).score(
        [InputEvent(value=orjson.dumps(good)), InputEvent(value=huge)]
    )
    assert batch.indices == [0] and len(batch.records) == 1
    [rejected] = batch.rejected
    assert rejected.index == 1
    assert rejected.rejection.reason == RejectReason.NON_FINITE
    assert "body_mass_g" in rejected.rejection.detail


# --- records -------------------------------------------------------------------------------

finite_or_not = st.floats(width=64)
labels = st.lists(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=6), min_size=1, max_size=4
)


@st.composite
def scored(draw: st.DrawFn) -> tuple[list[str], list[str], list[InputEvent], Outputs]:
    names = draw(labels)
    rows = draw(st.integers(1, 6))
    scores = np.array(
        draw(st.lists(st.lists(finite_or_not, min_size=len(names), max_size=len(names)),
                      min_size=rows, max_size=rows)),
        dtype=np.float64,
    )  # fmt: skip
    kind = draw(st.sampled_from(["str", "int", "bool", "float", "mixed"]))
    pool: dict[str, st.SearchStrategy[Any]] = {
        "str": st.sampled_from(names),
        "int": st.integers(-(2**63), 2**63 - 1),
        "bool": st.booleans(),
        "float": finite_or_not,
        "mixed": st.sampled_from(names) | st.integers(-5, 5) | st.booleans() | finite_or_not,
    }
    predictions = np.empty(rows, dtype=object)
    predictions[:] = [draw(pool[kind]) for _ in range(rows)]
    ids = [draw(st.text(max_size=8)) for _ in range(rows)]
    sources = [
        InputEvent(
            value=b"{}",
            topic=draw(st.sampled_from(["events", 'we"ird,%s', "ünï"])),
            partition=draw(st.integers(0, 1000)),
            offset=draw(st.integers(0, 2**62)),
            timestamp_ms=draw(st.none() | st.integers(0, 2**45)),
        )
        for _ in range(rows)
    ]
    return names, ids, sources, Outputs(predictions, scores)


MODEL = {"name": 'm%s,"x"', "version": "1.0", "digest": "sha256:00"}


@settings(max_examples=300, deadline=None)
@given(scored(), st.booleans(), st.booleans(), st.sampled_from(["scores", "decision"]))
def test_record_encoder_gives_encode_ones_bytes(
    case: tuple[list[str], list[str], list[InputEvent], Outputs],
    include_source: bool,
    regression: bool,
    scores_key: str,
) -> None:
    names, ids, sources, outputs = case
    if regression:  # float predictions, no scores
        assert outputs.scores is not None
        names, outputs = [], Outputs(outputs.scores[:, 0].copy(), None)
    encoder = RecordEncoder(MODEL, names, include_source=include_source, scores_key=scores_key)
    got = encoder.encode(ids, sources, outputs)

    predictions = outputs.predictions.tolist()
    scores = outputs.scores.tolist() if outputs.scores is not None and names else None
    want = [
        encode_one(
            event_id,
            predictions[i],
            dict(zip(names, scores[i], strict=True)) if scores else None,
            MODEL,
            sources[i] if include_source else None,
            scores_key,
        )
        for i, event_id in enumerate(ids)
    ]
    assert got == want


# --- decoding a batch at once ----------------------------------------------------------------

_BAD_VALUES = [
    None,  # no value
    b"",  # not JSON
    b"[1, 2]",  # JSON, not an object
    b'{"bill_length_mm": NaN}',  # orjson refuses, the stdlib reads: non_finite, not invalid
    b'{"a": 1}, {"b": 2}',  # two objects: not one value
    b'{"event_id": "' + b"x" * 300 + b'"}',  # beyond max_event_bytes below
]


def test_a_batch_decoded_at_once_gives_each_events_own_verdict(penguins_bundle: Bundle) -> None:
    """The whole-batch decode (one orjson call per value, no loop) is taken only when every
    value is an object within the size limit; otherwise each event is looked at alone, and
    either way an event's record or rejection is what it gets scored alone."""
    good = [
        orjson.dumps({"event_id": f"e{i}", "bill_length_mm": 39.0 + i, "bill_depth_mm": 18.7,
                      "flipper_length_mm": 181, "body_mass_g": 3750, "island": "Dream",
                      "sex": "male"})
        for i in range(4)
    ]  # fmt: skip
    scorer = BatchScorer(penguins_bundle, max_event_bytes=200)

    def alone(value: bytes | None) -> tuple[list[bytes], list[tuple[str, str]]]:
        one = scorer.score([InputEvent(value, offset=0)])
        return one.records, [(r.rejection.reason, r.rejection.detail) for r in one.rejected]

    whole = scorer.score([InputEvent(v, offset=0) for v in good])
    assert whole.indices == [0, 1, 2, 3] and not whole.rejected
    assert whole.records == [alone(v)[0][0] for v in good]
    for bad in _BAD_VALUES:
        for at in range(len(good) + 1):
            values = [*good[:at], bad, *good[at:]]
            batch = scorer.score([InputEvent(v, offset=0) for v in values])
            assert [r.index for r in batch.rejected] == [at]
            rejection = batch.rejected[0].rejection
            assert [(rejection.reason, rejection.detail)] == alone(bad)[1]
            assert batch.indices == [i for i in range(len(values)) if i != at]
            assert batch.records == whole.records


def test_record_encoder_gives_encode_ones_bytes_for_multi_output_predictions() -> None:
    """A multi-output regressor predicts one row of numbers per event: each record holds
    its row as a JSON array, as ``encode_one`` writes it."""
    predictions = np.array([[1.5, -0.0], [2.0, 1e300], [float("nan"), 3.25]])
    sources = [InputEvent(b"{}", topic="events", offset=i) for i in range(3)]
    encoder = RecordEncoder(MODEL, [], include_source=True)
    got = encoder.encode(["a", "b", "c"], sources, Outputs(predictions, None))
    rows = predictions.tolist()
    want = [encode_one(i, rows[n], None, MODEL, sources[n]) for n, i in enumerate("abc")]
    assert got == want
