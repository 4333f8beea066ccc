"""The struct-decoded fast path scores every batch as the general path does.

``worker.core.json_columns`` decodes plain JSON values with msgspec straight into the
model's columns. A batch scored through it must give the records, rejections (reason and
detail), frame and unknown-category counts of the general path (orjson, ``check_batch``),
whatever the values: numbers in every JSON spelling, nulls, absent features, other types,
duplicate keys, ids of every kind, bytes that are not JSON.
"""

from __future__ import annotations

import json
import math
from typing import Any, cast

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.typed import typed_bundle as bench_typed_bundle
from bench.typed import typed_events
from model_bundles.bundle import Bundle
from model_bundles.predict import Outputs
from schemas.manifest import FeatureSpec
from schemas.rejection import Rejection
from worker.core.events import InputEvent
from worker.core.json_columns import MAX_REFUSED, JsonColumns
from worker.core.scoring import BatchScorer, ScoredBatch

LIMIT = 8000
"""--max-event-bytes of the scorers compared: above the deepest nesting tried but one."""
NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


_ODD_NUMBERS = [
    b"-0", b"-0.0", b"0e0", b"1E5", b"1e-400", b"1e400", b"-1e400", b"1" + b"0" * 400,
    b"2.2250738585072011e-308", b"4.9e-324", b"9007199254740993", b"18446744073709551617",
    b"NaN", b"Infinity", b"true", b"null", b'"5"', b"[1]", b"01", b"1.", b".5",
]  # fmt: skip


_IGNORED_FIELDS = [
    (b"note", b'"\xff"'),  # not UTF-8: invalid_json on the general path
    (b"\xfe", b"1"),  # a key that is not UTF-8
    (b"note", b'"caf\xc3\xa9"'),  # UTF-8, not ASCII
    (b"nested", b"[" * 1000 + b"]" * 1000),  # orjson reads it, msgspec's recursion does not
    (b"nested", b"[" * 3000 + b"]" * 3000),  # beyond both
    (b"note", b'"\\ud800"'),  # a lone surrogate escape
    (b"pad", b'"' + b"x" * LIMIT + b'"'),  # too_large
]


def _number_texts() -> st.SearchStrategy[bytes]:
    """JSON numbers as a producer may spell them, and texts that are not numbers."""
    floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
    return st.one_of(
        floats.map(lambda x: repr(x).encode()),
        floats.map(lambda x: f"{x:.17e}".encode()),
        floats.map(lambda x: f"{x:.25g}".replace("inf", "1e999").encode()),
        st.integers(-(2**80), 2**80).map(lambda n: str(n).encode()),
        st.sampled_from(_ODD_NUMBERS),
    )


def _category_texts() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.sampled_from([b'"Biscoe"', b'"Dream"', b'"Anvers"', b'"male"', b'"female"', b'""']),
        st.text(max_size=4).map(orjson.dumps),
        st.sampled_from([b"null", b"1", b"true", b"1.5", b'"\\ud800"', b'"\\u00e9"', b"{}"]),
    )


def _id_texts() -> st.SearchStrategy[bytes | None]:
    return st.one_of(
        st.none(),  # no id field: the key, else the bytes' digest
        st.text(max_size=6).map(orjson.dumps),
        st.sampled_from([b"7", b"123456789012345678901234567890", b"null", b"1.5", b"[]"]),
    )


@st.composite
def event_values(draw: st.DrawFn) -> bytes | None:
    """One event's value: mostly an object of the penguin features, at times anything."""
    shape = draw(st.integers(0, 19))
    if shape == 0:
        return draw(st.sampled_from([None, b"", b"[1]", b'{"a": 1}, {"b": 2}', b"\xff"]))
    fields: list[tuple[bytes, bytes]] = []
    for name in NUMERIC:
        if draw(st.integers(0, 9)):  # a plain number most of the time
            text = draw(st.floats(0, 6000).map(lambda x: repr(x).encode()) | _number_texts())
            fields.append((name.encode(), text))
    for name in ("island", "sex"):
        if draw(st.integers(0, 9)):
            fields.append((name.encode(), draw(_category_texts())))
    id_text = draw(_id_texts())
    if id_text is not None:
        fields.append((b"event_id", id_text))
    if draw(st.integers(0, 9)) == 0:  # a key again: the last one counts
        fields.append(draw(st.sampled_from(fields)) if fields else (b"x", b"1"))
    if draw(st.integers(0, 9)) == 0:  # a field no feature reads, msgspec skips it
        fields.append(draw(st.sampled_from(_IGNORED_FIELDS)))
    fields = draw(st.permutations(fields))
    return b"{" + b",".join(b'"' + k + b'":' + v for k, v in fields) + b"}"


def _general(bundle: Bundle) -> BatchScorer:
    scorer = BatchScorer(bundle, max_event_bytes=LIMIT)
    scorer._columns = None
    return scorer


def _same(got: ScoredBatch, want: ScoredBatch) -> None:
    assert got.indices == want.indices
    assert got.records == want.records
    assert [(r.index, r.rejection) for r in got.rejected] == [
        (r.index, r.rejection) for r in want.rejected
    ]
    assert got.unknown_categories == want.unknown_categories
    assert list(got.frame.columns) == list(want.frame.columns)
    for column in want.frame.columns:
        a, b = got.frame[column], want.frame[column]
        assert a.dtype == b.dtype, column
        if a.dtype == np.float64:
            assert a.to_numpy().tobytes() == b.to_numpy().tobytes(), column
        else:
            assert all(x is y or x == y for x, y in zip(a, b, strict=True)), column
    _same_outputs(got.outputs, want.outputs)


def _fast_as_general(bundle: Bundle, values: list[bytes | None], key: bytes | None) -> None:
    """The batch of ``values`` (all keyed ``key``) scored through the fast path's scorer
    and through the general path alone give the same batch."""
    events = [InputEvent(v, key, "events", 0, i, 1_000 + i) for i, v in enumerate(values)]
    fast = BatchScorer(bundle, max_event_bytes=LIMIT)
    assert fast._columns is not None
    _same(fast.score(events), _general(bundle).score(events))


def _same_outputs(got: Outputs, want: Outputs) -> None:
    assert got.predictions.tolist() == want.predictions.tolist()
    if want.scores is None:
        assert got.scores is None
    else:
        assert got.scores is not None and got.scores.tobytes() == want.scores.tobytes()


@settings(max_examples=300, deadline=None)
@given(st.lists(event_values(), max_size=12), st.sampled_from([None, b"k", b"\xfe"]))
def test_the_fast_path_scores_every_batch_as_the_general_path(
    penguins_bundle: Bundle, values: list[bytes | None], key: bytes | None
) -> None:
    _fast_as_general(penguins_bundle, values, key)


def _event(i: int, **extra: Any) -> bytes:
    event = {
        "event_id": f"e{i}", "bill_length_mm": 39.0 + i, "bill_depth_mm": 18.7,
        "flipper_length_mm": 181, "body_mass_g": 3750, "island": "Dream", "sex": None,
    }  # fmt: skip
    return json.dumps(event | extra).encode()  # orjson refuses integers beyond 64 bits


def test_a_batch_of_many_bad_events_goes_to_the_general_path_whole(
    penguins_bundle: Bundle,
) -> None:
    """Each event the struct decoder refuses is judged alone; past ``MAX_REFUSED`` of them
    the general path takes the batch, which judges them together."""
    values = [_event(i) for i in range(5)] + [b"[%d]" % i for i in range(MAX_REFUSED + 1)]
    events = [InputEvent(v, offset=i) for i, v in enumerate(values)]
    scorer = BatchScorer(penguins_bundle)
    assert scorer._columns is not None
    judged: list[int] = []

    def verdict(index: int) -> Rejection | None:
        judged.append(index)
        return scorer._verdict_at(events)(index)

    assert scorer._columns.read(events, verdict) is None
    assert len(judged) == MAX_REFUSED
    held = scorer._columns.read(events[: 5 + MAX_REFUSED], verdict)
    assert held is not None and len(held.checked.rejected) == MAX_REFUSED
    _same(scorer.score(events), _general(penguins_bundle).score(events))


def test_a_clean_batch_and_a_batch_with_rejects_take_the_fast_path(
    penguins_bundle: Bundle,
) -> None:
    """Not vacuous: the fast path does hold the common batches, rejects included."""
    scorer = BatchScorer(penguins_bundle)
    columns = scorer._columns
    assert columns is not None
    clean = [InputEvent(_event(i), offset=i) for i in range(50)]
    held = columns.read(clean, scorer._verdict_at(clean))
    assert held is not None and held.checked.accepted == list(range(50))
    dirty = [*clean, InputEvent(b"not json"), InputEvent(_event(51, island=3))]
    held = columns.read(dirty, scorer._verdict_at(dirty))
    assert held is not None and [i for i, _ in held.checked.rejected] == [50, 51]


@pytest.mark.parametrize(
    "odd",
    [
        {"event_id": 7},  # an integer id: SPEC keeps its digits
        {"event_id": 2**70},
        {"sex": 1},  # no category is an integer: the general path says wrong_type ...
    ],
)
def test_a_batch_with_an_event_only_the_general_path_reads_is_scored_by_it(
    penguins_bundle: Bundle, odd: dict[str, Any]
) -> None:
    events = [InputEvent(_event(0), offset=0), InputEvent(_event(1, **odd), offset=1)]
    scorer = BatchScorer(penguins_bundle)
    assert scorer._columns is not None
    held = scorer._columns.read(events, scorer._verdict_at(events))
    if "sex" in odd:  # ... so the fast path holds the batch, with that verdict
        assert held is not None and [i for i, _ in held.checked.rejected] == [1]
    else:
        assert held is None
    _same(scorer.score(events), _general(penguins_bundle).score(events))


def test_features_the_fast_path_does_not_serve() -> None:
    plain = FeatureSpec(name="x", kind="numeric", dtype="float64", nullable=True)
    assert JsonColumns.serves([plain], "event_id")
    assert not JsonColumns.serves([plain], "x")  # the id field is a feature
    integers = [f"{s}{b}" for s in ("int", "uint", "Int", "UInt") for b in (8, 16, 32, 64)]
    for dtype in (*integers, "bool", "boolean", "str", "string"):  # read as fitted
        typed = FeatureSpec(name="n", kind="numeric", dtype=dtype, nullable=False)
        serves = JsonColumns.serves([plain, typed], "event_id")
        assert serves == (dtype.lower() != "uint64"), dtype  # msgspec: no bound past int64
        if serves:  # the decoder is built as served, and reads a value of the dtype
            value = {"bool": b"true", "boolean": b"true", "str": b'"a"', "string": b'"a"'}
            event = b'{"x":1,"n":' + value.get(dtype, b"1") + b"}"
            assert JsonColumns([plain, typed], "event_id", LIMIT)._decode(event)
    for dtype in ("uint64", "UInt64", "float32", "Float64", "datetime64[ns]"):  # general
        typed = FeatureSpec(name="n", kind="numeric", dtype=dtype, nullable=False)
        assert not JsonColumns.serves([plain, typed], "event_id"), dtype


# --- fitted dtypes (the frame a team fits on, ``pd.read_csv``'s int and bool columns) ---

TYPED_VALUES = {
    "count": [b"0", b"7", b"-3", b"9223372036854775807", b"9223372036854775808", b"-0"],
    "small": [b"0", b"255", b"256", b"-1", b"12"],
    "maybe": [b"null", b"4", b"-9223372036854775809", b"2"],
    "flag": [b"true", b"false", b"1", b"0"],
    "ok": [b"true", b"false", b"null"],
    "code": [b'"01"', b'"2"', b'"x"', b'"new"', b'""', b'"caf\\u00e9"'],
    "name": [b'"a"', b'"b"', b'""', b'"\\ud800"', b"null"],
}
"""Per feature: values it fits and values near its edges (out of range, another type)."""
_TYPED_ODD = [b"1.0", b"1e2", b"true", b'"7"', b"[]", b"{}", b"null", b"01", b"1.5"]


@st.composite
def typed_event_values(draw: st.DrawFn) -> bytes | None:
    """A JSON value for ``typed_bundle``: mostly fitting, sometimes not in every way."""
    if draw(st.integers(0, 29)) == 0:
        return draw(st.sampled_from([None, b"", b"[1]", b"\xff", b'{"count": 1}']))
    fields = []
    for name, fitting in TYPED_VALUES.items():
        if draw(st.integers(0, 24)) == 0:
            continue  # absent
        odd = draw(st.integers(0, 9)) == 0
        fields.append((name.encode(), draw(st.sampled_from(_TYPED_ODD if odd else fitting))))
    if draw(st.booleans()):
        fields.append((b"event_id", draw(st.sampled_from([b'"e1"', b"7", b"null"]))))
    if draw(st.integers(0, 9)) == 0:
        fields.append(draw(st.sampled_from(_IGNORED_FIELDS[:3])))
    fields = draw(st.permutations(fields))
    return b"{" + b",".join(b'"' + k + b'":' + v for k, v in fields) + b"}"


@pytest.fixture(scope="module")
def typed_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """A pipeline fitted on a frame of fitted dtypes the fast path reads (``bench.typed``:
    int64, uint8, Int64 with missing values, bool, boolean, str, string)."""
    return bench_typed_bundle(tmp_path_factory.mktemp("typed") / "b")


@settings(max_examples=300, deadline=None)
@given(st.lists(typed_event_values(), max_size=12), st.sampled_from([None, b"k"]))
def test_the_fast_path_scores_fitted_dtypes_as_the_general_path(
    typed_bundle: Bundle, values: list[bytes | None], key: bytes | None
) -> None:
    _fast_as_general(typed_bundle, values, key)


def test_a_clean_batch_of_fitted_dtypes_takes_the_fast_path(typed_bundle: Bundle) -> None:
    events = typed_events(50)
    fast = BatchScorer(typed_bundle, max_event_bytes=LIMIT)
    assert fast._columns is not None
    held = fast._columns.read(events, fast._verdict_at(events))
    assert held is not None and held.checked.accepted == list(range(50))
    assert [str(t) for t in held.checked.frame.dtypes] == [
        "int64", "uint8", "Int64", "bool", "boolean", "str", "string"
    ]  # fmt: skip
    _same(fast.score(events), _general(typed_bundle).score(events))


@settings(max_examples=500, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, width=64), st.integers(0, 3))
def test_numbers_read_as_orjson_then_float64_reads_them(x: float, spelling: int) -> None:
    text = [repr(x), f"{x:.17e}", f"{x:.20g}", str(int(x)) if math.isfinite(x) else "0"][spelling]
    value = f'{{"x": {text}}}'.encode()
    feature = FeatureSpec(name="x", kind="numeric", dtype="float64", nullable=False)
    held = JsonColumns([feature], "event_id", 1000).read([InputEvent(value)], lambda i: None)
    want = np.array([orjson.loads(value)["x"]], dtype=np.float64)
    assert held is not None
    assert held.checked.frame["x"].to_numpy().tobytes() == want.tobytes()


class _Raising:
    """The penguins bundle, its model raising on any frame holding a bill longer than
    50 mm (``model_error`` for those events alone, after isolation)."""

    def __init__(self, bundle: Bundle) -> None:
        self._bundle = bundle

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bundle, name)

    def predict_model_frame(self, frame: Any) -> Outputs:
        if (frame["bill_length_mm"] > 50).any():
            raise ValueError("bill too long for this model")
        return self._bundle.predict_model_frame(frame)


def test_a_model_error_in_a_fast_path_batch_is_isolated_as_on_the_general_path(
    penguins_bundle: Bundle,
) -> None:
    raising = cast(Bundle, _Raising(penguins_bundle))
    values = [_event(i, bill_length_mm=40.0 + 3 * i) for i in range(8)]  # 52, 55, 58, 61 raise
    values.insert(3, b"not json")
    events = [InputEvent(v, offset=i) for i, v in enumerate(values)]
    fast, general = BatchScorer(raising), BatchScorer(raising)
    general._columns = None
    assert fast._columns is not None
    assert fast._columns.read(events, fast._verdict_at(events)) is not None  # the fast path
    got, want = fast.score(events), general.score(events)
    _same(got, want)
    reasons = [r.rejection.reason for r in got.rejected]
    assert reasons == ["invalid_json", "model_error", "model_error", "model_error", "model_error"]
    assert fast.isolating_calls == general.isolating_calls > 0
