"""A class whose construction writes a marker file: stands in for code a model file smuggles."""

from __future__ import annotations

import os
from typing import Any

MARKER_ENV = "SCORING_WORKER_TEST_MARKER"


class Evil:
    def __setstate__(self, state: dict[str, Any]) -> None:
        with open(os.environ[MARKER_ENV], "w") as marker:
            marker.write("code ran")

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {os.environ[MARKER_ENV]}",))
