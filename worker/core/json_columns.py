"""A batch of JSON event values straight into the checked model frame, for the common batch.

The general path (``worker.core.scoring``) reads each value with ``orjson.loads`` into a
dict, then ``model_bundles.events.check_batch`` gathers each feature's column out of the
dicts and validates it: a dict, its keys and values per event, then one lookup per
feature per event. For a bundle whose features are all in the canonical form (float64
numbers, text categories) or of a fitted dtype it can express (integers within the
dtype's range, bool, text: ``_struct_type``), ``JsonColumns`` instead decodes each value
with msgspec into a struct type compiled from the features: msgspec checks the types
while it reads (a number for a numeric feature, text for a categorical one, an integer in
range for an int64 or uint8 column, true/false for a bool one, null only where the
pipeline imputes it, every feature present) and creates one slotted object per event,
with no dict. The columns are then read off the structs (a fitted dtype's with the
general path's own ``FrameType.column``). On the demo events it reads a batch of 5,000 in
about 60 % of the general path's decode and check (docs/benchmarks.md, issue 33 round 3);
on a pipeline fitted on int64, bool, Int64, boolean, str and string columns the whole
scoring core takes 82 % of the general path's CPU (``python -m bench.typed``, round 4).

Exactness: the fast path holds a batch only when every event it accepts is one
``check_event`` accepts, with the same values, and every event it refuses is one the
general path rejects; any other batch is scored by the general path, so no verdict,
detail or value changes.

- Accepted: msgspec reads a JSON number for a ``float`` field as the correctly rounded
  float64 (an integer as ``float(int)``), as orjson followed by ``np.array(float64)``
  does; a number beyond float64 is an error to msgspec (``non_finite`` to
  ``check_event``); every column is still checked finite. Text is read as orjson reads
  it; a duplicate key keeps its last value in both. A value that is not UTF-8 anywhere
  (even in a key or field the struct ignores, which msgspec skips unchecked) is refused.
- Refused: each event the struct decoder refuses (not JSON, not UTF-8, not an object, a
  feature absent, null where not imputed, another type, an id that is not text, nesting
  beyond the recursion limit...) is judged by
  the general path's ``decide`` on its own; when that accepts it (an integer id, a
  category given as an integer...), the whole batch goes to the general path.

``tests/unit/core/test_json_columns.py`` holds the two paths to the same frames, ids and
verdicts on generated and corrupted batches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Annotated, Any, Optional, cast

import msgspec
import numpy as np

from model_bundles.dtypes import BooleanType, IntegerType, TextType, frame_type
from model_bundles.events import CheckedBatch, category_column, frame_of, unknown_count
from schemas.manifest import FeatureSpec
from schemas.rejection import Rejection
from worker.core.events import InputEvent

MAX_REFUSED = 8
"""Refused events a batch may hold and still take the fast path (each is judged alone)."""
_REFUSED = (ValueError, RecursionError)
"""What the struct decoder raises on a value it refuses: msgspec's DecodeError (and its
ValidationError) are ValueErrors; text that is not UTF-8 in a field it reads is a
UnicodeDecodeError; nesting deeper than the interpreter's recursion limit (an ignored key
holding 1,000 nested arrays, which orjson reads) is a RecursionError."""
_VALUE = attrgetter("value")


_INT64_MAX = 2**63 - 1


def _struct_type(feature: FeatureSpec) -> Any:
    """The msgspec type that reads exactly the (non-null) JSON values ``check_event``
    accepts for ``feature``, as the same Python values; None for a fitted dtype whose
    rule it cannot express (uint64, floats other than float64, categories, datetimes),
    served by the general path.

    Canonical: a number (an integer too, read as its float) or text. Fitted (issue 33,
    ``model_bundles.dtypes``): an integer within the dtype's range (msgspec reads no
    ``1.0`` or ``true`` as an int), ``true``/``false``, text."""
    if feature.canonical:
        return float if feature.kind == "numeric" else str
    fitted = frame_type(feature)
    if isinstance(fitted, IntegerType):
        if fitted.high > _INT64_MAX:  # uint64: msgspec takes no bound beyond int64's
            return None
        return Annotated[int, msgspec.Meta(ge=fitted.low, le=fitted.high)]
    if isinstance(fitted, BooleanType):
        return bool
    if isinstance(fitted, TextType):
        return str
    return None


def _utf8(value: bytes) -> bool:
    """Whether ``value`` is UTF-8. msgspec skips the keys and values of fields it does not
    read without checking their bytes, where orjson (and the general path's fallback to
    the standard library) refuse the whole value: ``invalid_json``."""
    if value.isascii():
        return True
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_ID = "event_id_"
"""The struct's attribute for the id field (features are ``f0``, ``f1``...)."""


@dataclass(frozen=True, slots=True)
class ColumnBatch:
    """A batch the fast path holds: its checked frame and, per accepted event, its id
    field's text (None where the event has none: the id then comes from the key or bytes)."""

    checked: CheckedBatch
    ids: list[str | None]


Decide = Callable[[int], "Rejection | None"]
"""The general path's verdict on the event at a position: its rejection, or None."""


class JsonColumns:
    """Decodes a batch of JSON values into the model frame of ``features``, when it can."""

    def __init__(self, features: Sequence[FeatureSpec], id_field: str, max_event_bytes: int):
        self.features = list(features)
        self.limit = max_event_bytes
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        for index, feature in enumerate(self.features):
            kind = _struct_type(feature)
            fields.append((f"f{index}", Optional[kind] if feature.nullable else kind))  # noqa: UP045
        fields.append((_ID, str | msgspec.UnsetType, msgspec.UNSET))
        rename = {f"f{i}": f.name for i, f in enumerate(self.features)} | {_ID: id_field}
        struct = msgspec.defstruct("Event", fields, rename=rename, gc=False)
        self._decode = msgspec.json.Decoder(struct).decode
        self._columns = [attrgetter(f"f{i}") for i in range(len(self.features))]
        self._id = attrgetter(_ID)

    @staticmethod
    def serves(features: Sequence[FeatureSpec], id_field: str) -> bool:
        """Whether the fast path applies: every feature canonical or of a fitted dtype it
        reads (integers, bool, text: ``_struct_type``), the id field no feature."""
        names = {f.name for f in features}
        return all(_struct_type(f) is not None for f in features) and id_field not in names

    def read(self, events: Sequence[InputEvent], decide: Decide) -> ColumnBatch | None:
        """The batch's checked frame and ids, or None: score it with the general path.

        ``decide(i)`` is consulted only for the events the struct decoder refuses, at most
        ``MAX_REFUSED`` of them: a batch with more goes to the general path whole, which
        judges many bad events at once more cheaply than one by one."""
        values = list(map(_VALUE, events))
        if (
            None in values
            or max(map(len, cast(list[bytes], values)), default=0) > self.limit
            or not (
                all(map(bytes.isascii, cast(list[bytes], values)))  # in C: the common batch
                or all(map(_utf8, cast(list[bytes], values)))
            )
        ):
            return self._each(values, decide)
        try:
            structs = list(map(self._decode, cast(list[bytes], values)))
        except _REFUSED:
            return self._each(values, decide)
        return self._checked(structs, list(range(len(structs))), [])

    def _each(self, values: list[bytes | None], decide: Decide) -> ColumnBatch | None:
        """Some value is refused: each one on its own, the refused ones judged by ``decide``."""
        decode, limit = self._decode, self.limit
        structs: list[Any] = []
        accepted: list[int] = []
        rejected: list[tuple[int, Rejection]] = []
        for index, value in enumerate(values):
            if value is not None and len(value) <= limit and _utf8(value):
                try:
                    structs.append(decode(value))
                except _REFUSED:
                    pass
                else:
                    accepted.append(index)
                    continue
            if len(rejected) == MAX_REFUSED:
                return None
            rejection = decide(index)
            if rejection is None:  # the general path scores what the struct refused
                return None
            rejected.append((index, rejection))
        return self._checked(structs, accepted, rejected)

    def _checked(
        self, structs: list[Any], accepted: list[int], rejected: list[tuple[int, Rejection]]
    ) -> ColumnBatch | None:
        columns: list[Any] = []
        unknown: dict[str, int] = {}
        for feature, column in zip(self.features, self._columns, strict=True):
            values = list(map(column, structs))
            if not feature.canonical:  # the general path's own column of its checked values
                columns.append(frame_type(feature).column(values))
                if feature.kind == "categorical" and (count := unknown_count(feature, values)):
                    unknown[feature.name] = count
            elif feature.kind == "numeric":
                numbers = np.array(values, dtype=np.float64)  # None -> NaN
                finite = np.isfinite(numbers)
                if not finite.all() and any(values[i] is not None for i in np.flatnonzero(~finite)):
                    return None  # not reachable through msgspec; the general path judges it
                columns.append(numbers)
            else:
                columns.append(category_column(values))
                if count := unknown_count(feature, values):
                    unknown[feature.name] = count
        found: list[str | msgspec.UnsetType] = list(map(self._id, structs))
        ids: list[Any] = found
        if msgspec.UNSET in found:  # no id field: ``BatchScorer`` takes the key or the bytes
            ids = [None if i is msgspec.UNSET else i for i in found]
        checked = CheckedBatch(accepted, rejected, frame_of(self.features, columns), unknown)
        return ColumnBatch(checked, ids)
