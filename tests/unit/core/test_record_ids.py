"""The records' event ids are encoded in one orjson call when no id needs an escape
(``worker.core.encoding``): ids holding quotes, commas, backslashes, control characters
or the separator itself must still give ``encode_one``'s bytes, and non-string ids too."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_bundles.predict import Outputs
from worker.core.encoding import RecordEncoder, encode_one
from worker.core.events import InputEvent

MODEL = {"name": "m", "version": "1", "digest": "sha256:00"}
LABELS = ["a", "b"]


def _both(ids: list[Any]) -> tuple[list[bytes], list[bytes]]:
    rows = len(ids)
    scores = np.linspace(0, 1, rows * 2).reshape(rows, 2)
    predictions = np.array(["a"] * rows, dtype=object)
    sources = [InputEvent(b"{}", None, "t", 0, i, None) for i in range(rows)]
    got = RecordEncoder(MODEL, LABELS, include_source=True).encode(
        ids, sources, Outputs(predictions, scores)
    )
    want = [
        encode_one(i, "a", dict(zip(LABELS, scores[n].tolist(), strict=True)), MODEL, sources[n])
        for n, i in enumerate(ids)
    ]
    return got, want


@pytest.mark.parametrize(
    "ids",
    [
        ['a","b', "c"],
        ['","', '","', ""],
        ["", ""],
        ['x\\"', "y"],
        ["tab\there", "new\nline", "ünï", "日本"],
        ['"', ",", '"",""'],
        ["plain-1", "plain-2"],
    ],
)
def test_ids_that_look_like_separators_keep_their_own_bytes(ids: list[str]) -> None:
    got, want = _both(ids)
    assert got == want


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet='ab",\\\n%é', max_size=6), min_size=1, max_size=8))
def test_any_string_ids_give_encode_ones_bytes(ids: list[str]) -> None:
    got, want = _both(ids)
    assert got == want


def test_non_string_ids_take_the_general_path() -> None:
    got, want = _both([1, "a", None])
    assert got == want
