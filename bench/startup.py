"""Start-up: `scoring-worker --help`, and the golden-sample self-check every bundle load runs.

The self-check is timed in process (``golden_mismatches`` on a loaded bundle) for the
demo bundles and a 100-tree random forest, with the plan it follows now and with the
former one (every golden row at batch sizes all, 1, 2, 3 and 7) for comparison.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from bench.common import Figure
from harness.processes import SCORING_WORKER
from model_bundles.bundle import Bundle, load_bundle
from model_bundles.verify import golden_mismatches

FORMER_SIZES = (0, 1, 2, 3, 7)


def help_seconds(repeats: int) -> Figure:
    """Wall time of ``scoring-worker --help`` (a fresh interpreter each time)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([SCORING_WORKER, "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return Figure.of(times, "s")


def forest_bundle(examples: Path, workdir: Path, trees: int = 100) -> Path:
    """The demo random forest with ``trees`` trees, built into ``workdir``."""
    from model_bundles.build import build_from_config

    config = workdir / f"config-rf{trees}.toml"
    text = (examples / "config-rf.toml").read_text()
    config.write_text(text.replace("n_estimators = 50", f"n_estimators = {trees}"))
    out = workdir / "bundles" / f"RF{trees}"
    build_from_config(config, examples / "penguins.csv", out)
    return out


def selfcheck_seconds(bundle: Bundle, repeats: int) -> Figure:
    """Wall time of the golden-sample self-check as every load runs it."""
    return _timed(lambda: golden_mismatches(bundle), repeats)


def former_selfcheck_seconds(bundle: Bundle, repeats: int) -> Figure:
    """The former plan: every golden row at every one of ``FORMER_SIZES``."""
    events = [row.event for row in bundle.reference.golden]

    def every_size() -> None:
        for size in FORMER_SIZES:
            chunk = size or len(events)
            for start in range(0, len(events), chunk):
                bundle.predict_events(events[start : start + chunk])

    return _timed(every_size, repeats)


def load(path: Path) -> Bundle:
    return load_bundle(path)


def _timed(action: object, repeats: int) -> Figure:
    assert callable(action)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return Figure.of(times, "s")
