"""A pod as OpenShift runs it (issue 28, 3): no writable filesystem, an arbitrary uid.

The worker runs in a mount namespace where /tmp and /var/tmp are read-only and every
other directory is root's, as uid 12345 (no passwd entry) with group 0, HOME=/ and
TMPDIR naming a missing directory: no temporary directory is usable at all. The uid
keeps only CAP_DAC_READ_SEARCH, so it reads the venv and the bundle (under root's home
on this machine) but writes nothing. It must start, score every event exactly once and
exit 0 when idle. `make container-test` checks the same in the image (`--read-only`, no
/tmp mount, `--user 12345:0`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_broker import TopicFactory
from worker_harness import (
    Topics,
    WorkerProcess,
    cached_stream,
    demo_bundle,
    produce_stream,
    research_records_async,
    stop_all,
)
from worker_verify import assert_exactly_once, read_predictions, verify_predictions

UID = 12345
# read-only bind remounts of the temporary directories, then the unknown uid execs the
# worker (exec all the way: the test's pid is the worker's, signals reach it)
SANDBOX_SCRIPT = (
    "set -e; for d in /tmp /var/tmp; do [ -d $d ] || continue; mount --bind $d $d; "
    "mount -o remount,bind,ro $d; done; cd /; "
    f"exec setpriv --reuid {UID} --regid 0 --clear-groups "
    '--inh-caps +dac_read_search --ambient-caps +dac_read_search "$@"'
)
SANDBOX = ("unshare", "--mount", "--propagation", "private", "sh", "-c", SANDBOX_SCRIPT, "sh")


def _sandbox_available() -> str | None:
    if os.geteuid() != 0:
        return "needs root (a mount namespace and setpriv to another uid)"
    missing = [tool for tool in ("unshare", "setpriv") if shutil.which(tool) is None]
    return f"needs {', '.join(missing)}" if missing else None


@pytest.fixture
def readable_bundle() -> Iterator[Path]:
    """A copy of the demo bundle the unknown uid may read: click checks ``--bundle`` with
    access(2), which ignores capabilities, and pytest's tmp_path is root's alone."""
    why = _sandbox_available()
    if why:
        pytest.skip(why)
    where = Path(tempfile.mkdtemp(prefix="sw-readable-"))
    where.chmod(0o755)
    try:
        yield Path(shutil.copytree(demo_bundle(), where / "penguins"))
    finally:
        shutil.rmtree(where)


def test_read_only_filesystem_and_an_unknown_uid(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path, readable_bundle: Path
) -> None:
    stream = cached_stream(2_000, seed=28, poison_rate=0.02)
    research = research_records_async(stream)
    topics = Topics(input=topic_factory(2), output=topic_factory(2), dlq=topic_factory(1))
    produce_stream(bootstrap, topics.input, stream)
    worker = WorkerProcess(
        bootstrap,
        topics,
        tmp_path,
        "read-only",
        "--idle-timeout",
        "8",
        derive_id_in=Path("/nonexistent-tmp"),  # TMPDIR: missing, and / is not writable
        extra_env={"HOME": "/"},
        bundle=readable_bundle,
        wrap=SANDBOX,
    )
    try:
        code = worker.wait(180)
    finally:
        stop_all([worker])
    assert code == 0, worker.story()
    start = worker.events("start")[0]
    print(f"\nFIGURE read-only: transactional id {start['transactional_id']}")
    assert start["transactional_id"].startswith(f"{topics.group}-")
    assert start["id_field"] == "event_id"  # the bundle's id_column, shown (issue 28, 11)
    records = read_predictions(bootstrap, topics.output, stream.valid)
    assert_exactly_once(verify_predictions(records, research.result()), stream.valid)
