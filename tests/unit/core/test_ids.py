"""Event ids (SPEC "Events and records"): exact integers, non-UTF-8 keys, ids from bytes."""

from __future__ import annotations

import orjson

from model_bundles.bundle import Bundle
from worker.core.events import InputEvent
from worker.core.ids import event_id, fallback_id
from worker.core.scoring import BatchScorer
from worker.replay.parity import compare

PENGUIN = {
    "island": "Biscoe",
    "bill_length_mm": 45.0,
    "bill_depth_mm": 15.0,
    "flipper_length_mm": 210.0,
    "body_mass_g": 5000.0,
    "sex": "male",
}


def _ids(bundle: Bundle, events: list[InputEvent]) -> list[str]:
    records = BatchScorer(bundle).score(events).records
    return [orjson.loads(r)["event_id"] for r in records]


def test_an_integer_event_id_keeps_every_digit(penguins_bundle: Bundle) -> None:
    big = 123456789012345678901234567890
    values = [
        orjson.dumps({**PENGUIN, "event_id": 7}),
        b'{"event_id": 123456789012345678901234567890, "island": "Biscoe", '
        b'"bill_length_mm": 45.0, "bill_depth_mm": 15.0, "flipper_length_mm": 210.0, '
        b'"body_mass_g": 5000.0, "sex": "male"}',
    ]
    assert _ids(penguins_bundle, [InputEvent(v) for v in values]) == ["7", str(big)]


def test_keys_that_are_not_utf8_give_distinct_b64_ids_and_parity_of_a_file_with_itself_is_ok(
    penguins_bundle: Bundle,
) -> None:
    other = {**PENGUIN, "island": "Dream", "bill_length_mm": 39.0}
    events = [
        InputEvent(orjson.dumps(PENGUIN), key=b"\xff\x01", topic="t", offset=0),
        InputEvent(orjson.dumps(other), key=b"\xfe\x01", topic="t", offset=1),
        InputEvent(orjson.dumps(other), key="é".encode(), topic="t", offset=2),
    ]
    assert _ids(penguins_bundle, events) == ["b64:/wE=", "b64:/gE=", "é"]
    records = BatchScorer(penguins_bundle).score(events).records
    result = compare(records, records)
    assert result.ok and result.matched == 3 and result.expected.conflicting == 0


def test_without_field_or_key_the_id_is_the_same_from_a_file_line_and_from_kafka(
    penguins_bundle: Bundle,
) -> None:
    value = orjson.dumps(PENGUIN)
    from_file = InputEvent(value, topic="events.jsonl", partition=0, offset=12)
    from_kafka = InputEvent(value, topic="events", partition=2, offset=40_001)
    other = InputEvent(orjson.dumps({**PENGUIN, "sex": "female"}), topic="events", offset=3)
    ids = _ids(penguins_bundle, [from_file, from_kafka, other])
    assert ids[0] == ids[1] != ids[2]
    assert ids[0].startswith("sha256:") and len(ids[0]) == len("sha256:") + 64
    assert ids[0] == fallback_id(None, value) == event_id({}, "event_id", b"", value)


def test_unusable_id_fields_fall_back_to_the_key() -> None:
    for unusable in (None, True, 1.5, {"a": 1}):
        event = {"event_id": unusable}
        assert event_id(event, "event_id", b"k-1", b"{}") == "k-1"
