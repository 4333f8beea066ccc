"""Reviewed skops handlers for the pandas values fitted estimators hold.

category_encoders (and some other libraries) keep their fitted mappings as
pandas ``Series``/``DataFrame``/``Index`` objects and pandas dtypes. skops has no
handler for them: it falls back to ``__reduce__``, which pandas' Cython
internals refuse (``TypeError: no default __reduce__ due to non-trivial
__cinit__``). These handlers save such a value as what it is made of, a dtype
spec (plain text), its values (a numpy array, saved by skops' own array node:
``np.save`` without pickle, or one node per item for object arrays), its index
and name, and load it by calling exactly ``pd.Series``/``pd.DataFrame``/
``pd.Index``/``pd.RangeIndex``/``pd.StringDtype`` and friends, nothing the file
names. The types they build are reviewed here, so no ``--trust-package pandas``
is needed (or accepted: pandas would admit ``pandas.read_pickle``).

A value that would not come back identical (a subclass, a categorical,
interval, period or time-zone dtype, a MultiIndex) is refused when saving
(``UnsupportedTypeException``), never saved approximately: the build then says
which step holds it. ``register()`` installs the handlers in skops (its
dispatch table and node mapping; skops has no public API for this, so the
pinned skops version is tested by ``tests/unit/bundles/test_library_catalogue.py``).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
from skops.io import _audit, _utils
from skops.io._audit import Node, get_tree
from skops.io._general import object_get_state
from skops.io._protocol import PROTOCOL
from skops.io._utils import LoadContext, SaveContext, get_state
from skops.io.exceptions import UnsupportedTypeException

SERIES, FRAME, INDEX, RANGE_INDEX, DTYPE = (
    "ScoringWorkerPandasSeriesNode",
    "ScoringWorkerPandasFrameNode",
    "ScoringWorkerPandasIndexNode",
    "ScoringWorkerPandasRangeIndexNode",
    "ScoringWorkerPandasDtypeNode",
)
_NUMPY_DTYPE = re.compile(r"[<>|=]?(b1|[iu][1248]|f[248]|O|[Mm]8\[(ns|us|ms|s)\])")
"""numpy dtypes a saved pandas value may have: bool, integers, floats, object,
tz-naive datetime64/timedelta64 (nothing that names a Python type)."""
_EXTENSION = frozenset(
    {"boolean", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
     "Float32", "Float64"}
)  # fmt: skip
"""pandas' nullable extension dtypes, rebuilt from their name; strings are ``StringDtype``."""


def dtype_spec(dtype: Any) -> dict[str, str]:
    """A dtype as plain text: ``{"numpy": "<i8"}``, ``{"pandas": "Int64"}`` or
    ``{"string": "pyarrow", "na": "nan"}``; UnsupportedTypeException otherwise."""
    if isinstance(dtype, np.dtype) and _NUMPY_DTYPE.fullmatch(dtype.str):
        return {"numpy": dtype.str}
    if isinstance(dtype, pd.StringDtype):
        return {"string": str(dtype.storage), "na": "nan" if dtype.na_value is not pd.NA else "NA"}
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and dtype.name in _EXTENSION:
        return {"pandas": dtype.name}
    raise UnsupportedTypeException(f"pandas values of dtype {dtype} cannot be saved exactly")


def check_spec(spec: Any) -> None:
    """ValueError unless ``spec`` is a ``dtype_spec`` this module writes (checked when the
    tree is read, before skops builds anything)."""
    valid = isinstance(spec, dict) and (
        (set(spec) == {"numpy"} and bool(_NUMPY_DTYPE.fullmatch(str(spec["numpy"]))))
        or (
            set(spec) == {"string", "na"}
            and spec["string"] in ("python", "pyarrow")
            and spec["na"] in ("nan", "NA")
        )
        or (set(spec) == {"pandas"} and spec["pandas"] in _EXTENSION)
    )
    if not valid:
        raise ValueError(f"not a dtype this scoring-worker saves: {spec}")


def dtype_of(spec: dict[str, str]) -> Any:
    """The dtype a ``dtype_spec`` describes; ValueError for anything else."""
    check_spec(spec)
    if "numpy" in spec:
        return np.dtype(spec["numpy"])
    if "string" in spec:
        na_value = np.nan if spec["na"] == "nan" else pd.NA
        try:
            return pd.StringDtype(spec["string"], na_value=na_value)
        except ImportError:
            # the live worker leaves pyarrow out (worker.live.lean): the same strings in
            # pandas' own storage, which compares, hashes and looks up identically
            return pd.StringDtype("python", na_value=na_value)
    return pd.api.types.pandas_dtype(spec["pandas"])


def _values(obj: pd.Series | pd.Index) -> np.ndarray[Any, Any]:
    """The values as numpy; a missing value of an extension dtype as None (pd.NA has no node)."""
    if isinstance(obj.dtype, np.dtype):
        return np.asarray(obj)
    values: np.ndarray[Any, Any] = np.asarray(obj.astype(object), dtype=object).copy()
    values[np.asarray(obj.isna())] = None
    return values


def _header(obj: Any, loader: str) -> dict[str, Any]:
    return {"__class__": type(obj).__name__, "__module__": "pandas", "__loader__": loader}


def _exactly(original: Any, rebuilt: Any) -> None:
    """Refuse, when saving, a value the loader would not rebuild identically."""
    same = type(rebuilt) is type(original) and rebuilt.dtype == original.dtype
    if isinstance(original, pd.Index):
        same = same and original.equals(rebuilt) and original.name == rebuilt.name
    else:
        same = same and original.equals(rebuilt) and original.index.equals(rebuilt.index)
    if not same:
        raise UnsupportedTypeException(
            f"a pandas {type(original).__name__} of dtype {original.dtype} cannot be saved exactly"
        )


def index_get_state(obj: pd.Index, save_context: SaveContext) -> dict[str, Any]:
    if type(obj) is pd.RangeIndex:
        bounds = (int(obj.start), int(obj.stop), int(obj.step))
        return {
            **_header(obj, RANGE_INDEX),
            "content": {"range": list(bounds), "name": get_state(obj.name, save_context)},
        }
    spec = dtype_spec(obj.dtype)
    values = _values(obj)
    _exactly(obj, pd.Index(values, dtype=dtype_of(spec), name=obj.name))
    return {
        **_header(obj, INDEX),
        "content": {
            "dtype": spec,
            "values": get_state(values, save_context),
            "name": get_state(obj.name, save_context),
        },
    }


def series_get_state(obj: pd.Series, save_context: SaveContext) -> dict[str, Any]:
    if type(obj) is not pd.Series:
        raise UnsupportedTypeException(f"{type(obj).__qualname__} (a pandas Series subclass)")
    spec = dtype_spec(obj.dtype)
    values = _values(obj)
    _exactly(obj, pd.Series(values, index=obj.index, name=obj.name, dtype=dtype_of(spec)))
    return {
        **_header(obj, SERIES),
        "content": {
            "dtype": spec,
            "values": get_state(values, save_context),
            "index": get_state(obj.index, save_context),
            "name": get_state(obj.name, save_context),
        },
    }


def frame_get_state(obj: pd.DataFrame, save_context: SaveContext) -> dict[str, Any]:
    if type(obj) is not pd.DataFrame:
        raise UnsupportedTypeException(f"{type(obj).__qualname__} (a pandas DataFrame subclass)")
    columns = [obj.iloc[:, i] for i in range(obj.shape[1])]
    specs = [dtype_spec(column.dtype) for column in columns]
    values = [_values(column) for column in columns]
    rebuilt = _frame(values, [dtype_of(spec) for spec in specs], obj.index, obj.columns)
    if not (obj.equals(rebuilt) and list(obj.dtypes) == list(rebuilt.dtypes)):
        raise UnsupportedTypeException("a pandas DataFrame that cannot be saved exactly")
    return {
        **_header(obj, FRAME),
        "content": {
            "dtypes": specs,
            "values": [get_state(v, save_context) for v in values],
            "index": get_state(obj.index, save_context),
            "columns": get_state(obj.columns, save_context),
        },
    }


def _frame(
    values: list[Any], dtypes: list[Any], index: pd.Index, columns: pd.Index
) -> pd.DataFrame:
    """A frame from its columns' values, positionally (labels may repeat or be any type)."""
    data = {
        i: pd.Series(v, index=index, dtype=dtype)
        for i, (v, dtype) in enumerate(zip(values, dtypes, strict=True))
    }
    frame = pd.DataFrame(data, index=index)
    frame.columns = columns
    return frame


def dtype_get_state(obj: Any, save_context: SaveContext) -> dict[str, Any]:
    """A dtype of the reviewed list by its spec; any other extension dtype as skops saved
    it before (an object of its package, which then needs that package trusted)."""
    try:
        spec = dtype_spec(obj)
    except UnsupportedTypeException:
        state: dict[str, Any] = object_get_state(obj, save_context)
        return state
    return {**_header(obj, DTYPE), "content": spec}


class _PandasNode(Node):  # type: ignore[misc]
    """Builds one pandas type, and only that type, from reviewed parts."""

    builds: str = ""
    node_keys: tuple[str, ...] = ("values", "index", "name", "columns")

    def __init__(
        self, state: dict[str, Any], load_context: LoadContext, trusted: Any = None
    ) -> None:
        super().__init__(state, load_context, trusted)
        self.trusted = self._get_trusted(trusted, [f"pandas.{self.builds}"])
        self.content: dict[str, Any] = state["content"]
        for spec in [self.content["dtype"]] if "dtype" in self.content else []:
            check_spec(spec)
        for spec in self.content.get("dtypes", []):
            check_spec(spec)
        self.children = {
            key: get_tree(self.content[key], load_context, trusted=trusted)
            for key in self.node_keys
            if key in self.content
        }

    def _child(self, key: str) -> Any:
        node = self.children[key]
        assert isinstance(node, Node)
        return node.construct()


class SeriesNode(_PandasNode):
    builds = "Series"

    def _construct(self) -> pd.Series:
        dtype = dtype_of(self.content["dtype"])
        index, name = self._child("index"), self._child("name")
        series: pd.Series = pd.Series(self._child("values"), index=index, name=name, dtype=dtype)
        return series


class IndexNode(_PandasNode):
    builds = "Index"

    def _construct(self) -> pd.Index:
        dtype = dtype_of(self.content["dtype"])
        index: pd.Index = pd.Index(self._child("values"), dtype=dtype, name=self._child("name"))
        return index


class RangeIndexNode(_PandasNode):
    builds = "RangeIndex"

    def _construct(self) -> pd.RangeIndex:
        start, stop, step = (int(v) for v in self.content["range"])
        return pd.RangeIndex(start, stop, step, name=self._child("name"))


class FrameNode(_PandasNode):
    builds = "DataFrame"
    node_keys = ("index", "columns")

    def __init__(
        self, state: dict[str, Any], load_context: LoadContext, trusted: Any = None
    ) -> None:
        super().__init__(state, load_context, trusted)
        self.column_values = [
            get_tree(values, load_context, trusted=trusted) for values in self.content["values"]
        ]
        self.children["values"] = self.column_values

    def _construct(self) -> pd.DataFrame:
        index, columns = self._child("index"), self._child("columns")
        dtypes = [dtype_of(spec) for spec in self.content["dtypes"]]
        return _frame([node.construct() for node in self.column_values], dtypes, index, columns)


class DtypeNode(_PandasNode):
    builds = "StringDtype"
    node_keys = ()

    def __init__(
        self, state: dict[str, Any], load_context: LoadContext, trusted: Any = None
    ) -> None:
        super().__init__(state, load_context, trusted)
        dtype = dtype_of(self.content)  # a bad spec fails here, when the tree is read
        self.trusted = self._get_trusted(trusted, [f"pandas.{type(dtype).__name__}"])

    def _construct(self) -> Any:
        return dtype_of(self.content)


@cache
def register() -> None:
    """Install the handlers in skops, once per process (saving and loading both need them)."""
    dispatch = _utils._get_state.register
    dispatch(pd.Series)(series_get_state)
    dispatch(pd.DataFrame)(frame_get_state)
    dispatch(pd.Index)(index_get_state)
    dispatch(pd.api.extensions.ExtensionDtype)(dtype_get_state)
    nodes: dict[str, type[Node]] = {
        SERIES: SeriesNode,
        FRAME: FrameNode,
        INDEX: IndexNode,
        RANGE_INDEX: RangeIndexNode,
        DTYPE: DtypeNode,
    }
    for loader, node in nodes.items():
        _audit.NODE_TYPE_MAPPING[(loader, PROTOCOL)] = node
