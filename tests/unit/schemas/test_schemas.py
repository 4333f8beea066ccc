"""Wire schemas: round trips are exact, and the event model agrees with the hot-path check."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from model_bundles.bundle import Bundle
from model_bundles.events import check_event
from schemas.events import event_model
from schemas.manifest import FeatureSpec
from schemas.records import DeadLetter, ModelRef, PredictionRecord, SourceRef
from schemas.wire_names import RejectReason
from tools.schema_export import main as export_main

finite = st.floats(allow_nan=False, allow_infinity=False)
labels = st.text(min_size=1, max_size=12)
records = st.builds(
    PredictionRecord,
    event_id=st.text(max_size=40),
    prediction=labels | finite,
    scores=st.none() | st.dictionaries(labels, finite, max_size=4),
    model=st.builds(ModelRef, name=labels, version=labels, digest=labels),
    source=st.none()
    | st.builds(
        SourceRef,
        topic=labels,
        partition=st.integers(0, 1000),
        offset=st.integers(0, 2**62),
        timestamp=st.none() | st.integers(0, 2**45),
    ),
)


@given(records)
def test_prediction_record_round_trips_exactly(record: PredictionRecord) -> None:
    encoded = orjson.dumps(record.model_dump(mode="json"))
    assert PredictionRecord.model_validate_json(encoded) == record


@given(
    reason=st.sampled_from(list(RejectReason)),
    detail=st.text(max_size=80),
    value=st.none() | st.binary(max_size=200),
)
def test_dead_letter_round_trips_and_names_its_reason(
    reason: RejectReason, detail: str, value: bytes | None
) -> None:
    letter = DeadLetter(reason=reason, detail=detail, bundle_digest="sha256:00", value=value)
    assert DeadLetter.model_validate_json(letter.model_dump_json()) == letter
    headers = dict(letter.headers())
    assert headers["scoring.reason"] == reason.value.encode()
    assert headers["scoring.detail"] == detail.encode()


# Integers around float64's largest value too: past it JSON numbers still parse as ints,
# but the model cannot take them (check_event says non_finite).
huge = st.integers(10**307, 10**310) | st.integers(-(10**310), -(10**307))
json_values = st.none() | st.booleans() | st.integers() | huge | finite | st.text(max_size=5)


# Categorical features whose training values were integers or booleans take JSON
# integers or booleans too (SPEC "Training data means what it says").
TYPED_CATEGORIES = [
    FeatureSpec(name="grade", kind="categorical", dtype="object", nullable=True,
                categories=["1", "2", "x"]),
    FeatureSpec(name="flag", kind="categorical", dtype="object", nullable=False,
                categories=["False", "True"]),
    FeatureSpec(name="both", kind="categorical", dtype="object", nullable=False,
                categories=["0", "True"]),
]  # fmt: skip


@settings(max_examples=300)
@given(data=st.data(), typed=st.booleans())
def test_event_model_accepts_exactly_what_check_event_accepts(
    data: st.DataObject, typed: bool, penguins_bundle: Bundle
) -> None:
    features: list[FeatureSpec] = TYPED_CATEGORIES if typed else penguins_bundle.features
    event: dict[str, Any] = {}
    for feature in features:
        if data.draw(st.booleans().map(lambda b: b and data.draw(st.integers(0, 9)) == 0)):
            continue  # occasionally absent
        event[feature.name] = data.draw(json_values)
    model = event_model(features)
    try:
        model.model_validate(event)
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == (check_event(event, features) is None)


def test_recorded_predictions_validate(penguins_bundle: Bundle) -> None:
    from worker.core.events import InputEvent
    from worker.core.scoring import BatchScorer

    event = {
        "bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181,
        "body_mass_g": 3750, "island": "Torgersen", "sex": "male", "event_id": "e1",
    }  # fmt: skip
    batch = BatchScorer(penguins_bundle).score(
        [InputEvent(value=orjson.dumps(event), key=b"k", topic="t", partition=2, offset=9)]
    )
    record = PredictionRecord.model_validate_json(batch.records[0])
    assert record.event_id == "e1" and record.source is not None and record.source.offset == 9
    assert record.scores is not None and abs(sum(record.scores.values()) - 1.0) < 1e-12


def test_committed_json_schemas_are_current() -> None:
    assert export_main(["--check", "schemas/json"]) == 0
