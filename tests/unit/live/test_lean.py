"""The live path's process: what it imports, and that leaving pyarrow out changes no
output byte (``worker.live.lean``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from examples.stream import generate_labelled_events
from model_bundles.bundle import Bundle
from worker.core.events import InputEvent
from worker.core.scoring import BatchScorer

ROOT = Path(__file__).resolve().parents[3]
NOT_LIVE = (
    "pyarrow",
    "matplotlib",
    "worker.replay",
    "worker.research",
    "worker.evaluate",
    "worker.cli.evaluate",
    "worker.cli.bundle",
)
"""Modules `scoring-worker run` has no use for."""

RUN_IN_A_FRESH_PROCESS = """
import atexit, sys
atexit.register(lambda: print("\\n".join(sorted(sys.modules)), file=open(sys.argv[1], "w")))
from worker.cli.main import main
main(["run", *sys.argv[2:]])
"""


def test_scoring_worker_run_imports_only_what_the_live_path_needs(
    penguins_bundle_dir: Path, tmp_path: Path
) -> None:
    modules = tmp_path / "modules.txt"
    args = [
        "--bundle", str(penguins_bundle_dir), "--bootstrap-servers", "127.0.0.1:1",
        "--input-topic", "in", "--output-topic", "out", "--no-dlq", "--group-id", "g",
        "--instance-id", "i", "--metrics-host", "127.0.0.1", "--metrics-port", "0",
        "--broker-timeout", "0.5",
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", RUN_IN_A_FRESH_PROCESS, str(modules), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr  # no broker: gave up after the timeout
    loaded = modules.read_text().split()
    assert "sklearn" in loaded and "worker.live.loop" in loaded  # it did get that far
    assert [m for m in loaded if m.partition(".")[0] in NOT_LIVE or m in NOT_LIVE] == []
    assert [m for m in loaded if any(m.startswith(f"{n}.") for n in NOT_LIVE)] == []


SCORE_WITHOUT_PYARROW = """
import sys, orjson
from worker.live.lean import leave_out
leave_out()
from model_bundles.bundle import load_bundle
from worker.core.events import InputEvent
from worker.core.scoring import BatchScorer
from pathlib import Path
lines = orjson.loads(sys.stdin.buffer.read())
events = [InputEvent(v.encode(), None, "t", 0, i) for i, v in enumerate(lines)]
scored = BatchScorer(load_bundle(Path(sys.argv[1]))).score(events)
assert "pyarrow" not in sys.modules
print(orjson.dumps({
    "records": [r.decode() for r in scored.records],
    "rejected": [[r.index, r.rejection.reason.value, r.rejection.detail] for r in scored.rejected],
}).decode())
"""


def test_outputs_without_pyarrow_are_the_same_bytes(
    penguins_bundle: Bundle, penguins_bundle_dir: Path
) -> None:
    lines = [line.decode() for line, _ in generate_labelled_events(500, 7, poison_rate=0.1)]
    done = subprocess.run(
        [sys.executable, "-c", SCORE_WITHOUT_PYARROW, str(penguins_bundle_dir)],
        input=orjson.dumps(lines), cwd=ROOT, capture_output=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    lean = orjson.loads(done.stdout)
    events = [InputEvent(v.encode(), None, "t", 0, i) for i, v in enumerate(lines)]
    scored = BatchScorer(penguins_bundle).score(events)
    assert "pyarrow" in sys.modules  # this process has it: the comparison means something
    assert lean["records"] == [r.decode() for r in scored.records]
    assert len(lean["records"]) > 400
    assert lean["rejected"] == [
        [r.index, r.rejection.reason.value, r.rejection.detail] for r in scored.rejected
    ]
