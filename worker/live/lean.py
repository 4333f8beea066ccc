"""What the live path keeps out of the process: libraries it never calls that another
library would import anyway, each holding memory for the life of the worker.

- ``pyarrow`` (59 MiB resident): pandas imports it whenever it is installed, for its
  Arrow-backed dtypes. The worker's frames hold numbers (float64) and categories as
  Python objects (``model_bundles.events``); pyarrow is for reading Parquet when a
  bundle is built. Without it pandas uses its own storage for the ``str`` dtype.

``leave_out`` must run before pandas is first imported (``worker.cli.main`` calls it for
``run`` only); a test checks that the live path's outputs are byte for byte the same
(``tests/unit/live/test_lean.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

LEFT_OUT = frozenset({"pyarrow"})
"""Top-level packages the live worker does not import."""


class _LeftOut(MetaPathFinder):
    """Refuses the packages of ``LEFT_OUT`` as if they were not installed (an importer
    asking, like pandas, falls back). Nothing goes into ``sys.modules``: scikit-learn
    tests ``sys.modules["pyarrow"]`` for an Arrow input."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname.partition(".")[0] in LEFT_OUT:
            raise ModuleNotFoundError(f"{fullname} is left off the live path", name=fullname)
        return None


def leave_out() -> None:
    """Keep ``LEFT_OUT`` out of this process from now on; a no-op if one is in already."""
    if any(name in sys.modules for name in LEFT_OUT):
        return
    if not any(isinstance(finder, _LeftOut) for finder in sys.meta_path):
        sys.meta_path.insert(0, _LeftOut())
