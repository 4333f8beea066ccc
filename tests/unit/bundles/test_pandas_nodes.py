"""The reviewed skops handlers for pandas values: exact round trips, refusals, no trust needed."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from hypothesis import given, settings
from hypothesis import strategies as st
from skops.io.exceptions import UnsupportedTypeException

from model_bundles import store  # noqa: F401  (registers the handlers, as the worker does)
from model_bundles.digest import canonical_skops

VALUES: dict[str, Any] = {
    "float": pd.Series([0.5, np.nan, -1.25], index=pd.Index(["a", "b", np.nan]), name="m"),
    "int": pd.Series([1, 2, 3], index=pd.RangeIndex(-2, 4, 2)),
    "object": pd.Series(["x", None, 3, np.nan], name=("col", 1)),
    "str": pd.Series(["x", None, "z"], dtype="str"),
    "string": pd.Series(["x", None], dtype="string"),
    "Int64": pd.Series([1, None, 3], dtype="Int64", index=pd.Index([2.5, 1.0, -1.0])),
    "boolean": pd.Series([True, None], dtype="boolean"),
    "bool": pd.Series([True, False]),
    "datetime": pd.Series(pd.to_datetime(["2024-03-01", None])),
    "frame": pd.DataFrame({"a": [1, 2], "b": ["x", None], 3: [0.5, np.nan]}, index=[7, 8]),
    "index": pd.Index([1, -2, 3], name="codes"),
    "dtype": pd.StringDtype("python"),
    "nested": {"mapping": [{"col": "c", "mapping": pd.Series({"x": 1, "y": 2})}]},
}


def _same(a: Any, b: Any) -> None:
    if isinstance(a, pd.Series | pd.DataFrame | pd.Index):
        assert type(a) is type(b)
        assert a.equals(b)
        if isinstance(a, pd.DataFrame):
            assert list(a.columns) == list(b.columns) and list(a.dtypes) == list(b.dtypes)
            assert a.index.equals(b.index)
        else:
            assert a.dtype == b.dtype and a.name == b.name
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _same(a[key], b[key])
    elif isinstance(a, list):
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    else:
        assert a == b


@pytest.mark.parametrize("name", sorted(VALUES))
def test_a_pandas_value_round_trips_exactly_and_needs_no_trust(name: str) -> None:
    data = canonical_skops(sio.dumps(VALUES[name]))
    untrusted = set(sio.get_untrusted_types(data=data))
    assert not {t for t in untrusted if t.startswith("pandas")}, untrusted
    _same(VALUES[name], sio.loads(data, trusted=sorted(untrusted)))


@pytest.mark.parametrize(
    "value",
    [
        pd.Series(["a", "b"], dtype="category"),
        pd.Series(pd.to_datetime(["2024-03-01"]).tz_localize("UTC")),
        pd.Series([pd.Interval(0, 1)]),
        pd.MultiIndex.from_tuples([(1, 2)]),
    ],
)
def test_a_value_that_would_not_come_back_identical_is_refused_when_saving(value: Any) -> None:
    with pytest.raises(UnsupportedTypeException, match="cannot be saved exactly"):
        sio.dumps(value)


def test_another_extension_dtype_is_saved_as_before_and_needs_its_package_trusted() -> None:
    data = sio.dumps(pd.CategoricalDtype(["a", "b"]))
    assert "pandas.CategoricalDtype" in sio.get_untrusted_types(data=data)


def test_a_tampered_dtype_spec_is_refused_before_anything_is_built() -> None:
    data = sio.dumps(pd.Series([1.0, 2.0]))
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    schema = json.loads(members["schema.json"])
    schema["content"]["dtype"] = {"numpy": "V8"}
    members["schema.json"] = json.dumps(schema).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for n, payload in members.items():
            archive.writestr(n, payload)
    with pytest.raises(ValueError, match="not a dtype this scoring-worker saves"):
        sio.get_untrusted_types(data=out.getvalue())  # reads the tree only: nothing built


def test_an_arrow_backed_string_value_loads_where_pyarrow_is_left_out(tmp_path: Any) -> None:
    """pandas 3 reads strings as the pyarrow-backed ``str`` dtype; the live worker leaves
    pyarrow out (``worker.live.lean``) and gets the same strings in pandas' own storage."""
    import subprocess
    import sys

    value = pd.Series(["a", None, "b"], index=pd.Index(["x", "y", "z"], dtype="str"), dtype="str")
    (tmp_path / "v.skops").write_bytes(sio.dumps(value))
    script = (
        "import sys\n"
        "from worker.live.lean import leave_out\n"
        "leave_out()\n"
        "import skops.io as sio\n"
        "from model_bundles import store\n"
        f"data = open({str(tmp_path / 'v.skops')!r}, 'rb').read()\n"
        "v = sio.loads(data, trusted=sio.get_untrusted_types(data=data))\n"
        "print(v.dtype, v.dtype.storage, v.index.dtype.storage, list(v),"
        " 'pyarrow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["str", "python", "python", "['a',", "nan,", "'b']", "False"]


_DTYPES = ["float64", "int64", "bool", "object", "str", "string", "Int64", "boolean", "Float64"]


@st.composite
def _series(draw: st.DrawFn) -> pd.Series:
    dtype = draw(st.sampled_from(_DTYPES))
    n = draw(st.integers(0, 6))
    text = st.text(max_size=4)
    maybe = st.none()
    element = {
        "float64": st.floats(allow_nan=True, allow_infinity=True) | maybe,
        "int64": st.integers(-(2**63), 2**63 - 1),
        "bool": st.booleans(),
        "object": text | st.integers(-(10**6), 10**6) | st.floats(allow_nan=True) | maybe,
        "str": text | maybe,
        "string": text | maybe,
        "Int64": st.integers(-(2**63), 2**63 - 1) | maybe,
        "boolean": st.booleans() | maybe,
        "Float64": st.floats(allow_nan=False) | maybe,
    }[dtype]
    values = draw(st.lists(element, min_size=n, max_size=n))
    labels = draw(st.lists(text | st.integers(-5, 5), min_size=n, max_size=n))
    index = pd.RangeIndex(n) if draw(st.booleans()) else pd.Index(labels, dtype=object)
    return pd.Series(values, index=index, dtype=dtype, name=draw(text | maybe))


@settings(max_examples=150, deadline=None)
@given(_series())
def test_any_series_of_a_reviewed_dtype_round_trips_exactly_or_is_refused(value: pd.Series) -> None:
    try:
        data = sio.dumps({"mapping": value})
    except UnsupportedTypeException:
        return  # refused when saving: the build names the step, never a different value
    untrusted = sio.get_untrusted_types(data=data)
    loaded = sio.loads(data, trusted=untrusted)["mapping"]
    _same(value, loaded)
    pd.testing.assert_series_equal(value, loaded, check_exact=True)
