"""The image, built and run for real (`make container-test`): podman, host network, the
local broker. Non-root, read-only root with a tmpfs, the bundle self-check, readiness, the
HEALTHCHECK, two replicas sharing the partitions (each deriving its own instance id from
one hostname), 2,000 events scored exactly once with research parity, dead letters, and
SIGTERM exit 0.
"""

from __future__ import annotations

import platform
import shutil
import uuid
from collections import Counter
from pathlib import Path

from kafka_broker import create_topic, poll_until, unique_topic
from podman import HARDENED, OPENSHIFT, Replica, podman, research_in_image
from worker_harness import demo_bundle, make_stream, produce_stream
from worker_verify import (
    GroupWatch,
    assert_exactly_once,
    read_predictions,
    read_with_headers,
    verify_predictions,
)

PROBE = """
import os
for path in ("/opt/probe", "/app/probe", "/tmp/probe"):
    try:
        open(path, "w").close()
        print(path, "writable")
    except OSError as exc:
        print(path, type(exc).__name__)
print("uid", os.getuid(), os.getgid())
"""


def test_non_root_read_only_and_the_bundle_self_check(image: str) -> None:
    verify = podman("run", "--rm", *HARDENED, image, "bundle", "verify", "/opt/bundles/penguins")
    assert "golden sample" in verify.stdout + verify.stderr
    probe = podman("run", "--rm", *HARDENED, "--entrypoint", "python", image, "-c", PROBE)
    lines = probe.stdout.splitlines()
    assert "uid 10001 10001" in lines
    assert "/tmp/probe writable" in lines
    assert "/opt/probe writable" not in lines and "/app/probe writable" not in lines


def test_two_replicas_score_2000_events_exactly_once(
    image: str, bootstrap: str, tmp_path: Path
) -> None:
    stream = make_stream(tmp_path, 2_000, seed=71, poison_rate=0.02)
    research = research_in_image(image, stream.path, tmp_path / "research")
    topics = {k: unique_topic(f"ct-{k}") for k in ("in", "out", "dlq")}
    for key, name in topics.items():
        create_topic(bootstrap, name, 1 if key == "dlq" else 4)
    group = unique_topic("ct-group")
    env = {
        "SCORING_WORKER_BOOTSTRAP_SERVERS": bootstrap,
        "SCORING_WORKER_INPUT_TOPIC": topics["in"],
        "SCORING_WORKER_OUTPUT_TOPIC": topics["out"],
        "SCORING_WORKER_DLQ_TOPIC": topics["dlq"],
        "SCORING_WORKER_GROUP_ID": group,
    }
    tag = uuid.uuid4().hex[:8]
    replicas = [Replica(image, f"sw-ct-{n}-{tag}", env, ["run"]) for n in "ab"]
    try:
        for r in replicas:
            poll_until(f"{r.name} /readyz", 180, lambda r=r: True if _ready(r) else None)
        for r in replicas:
            assert podman("healthcheck", "run", r.name, check=False).returncode == 0
        produce_stream(bootstrap, topics["in"], stream)
        ends = GroupWatch.ends(bootstrap, topics["in"])
        GroupWatch(bootstrap, group, topics["in"], 4).wait_caught_up(ends, 240)
        produced = [
            _counter(r.get("/metrics")[1], "scoring_predictions_produced_total") for r in replicas
        ]
        codes = [r.stop() for r in replicas]
        logs = [r.logs() for r in replicas]
    finally:
        for r in replicas:
            r.remove()
    ids = [
        next(e for e in lines if e.get("event") == "start")["transactional_id"] for lines in logs
    ]
    print(f"\nFIGURE containers: ids {ids}, predictions per replica {produced}, exit {codes}")
    assert ids[0] != ids[1]  # one hostname (host network), two ids
    assert codes == [0, 0]
    assert all(e.get("event") != "fenced" for lines in logs for e in lines)
    assert all(
        any(e.get("event") == "stop" and e.get("reason") == "SIGTERM" for e in lines)
        for lines in logs
    )
    assert all(n > 0 for n in produced), "both replicas scored"
    records = read_predictions(bootstrap, topics["out"], stream.valid)
    assert_exactly_once(verify_predictions(records, research), stream.valid)
    rejected = Counter(r for r in stream.reasons if r)
    letters = read_with_headers(bootstrap, topics["dlq"], sum(rejected.values()))
    assert Counter(x.headers["scoring.reason"].decode() for x in letters) == rejected


def test_no_writable_filesystem_and_an_unknown_uid(
    image: str, bootstrap: str, tmp_path: Path
) -> None:
    """Issue 28, 3: read-only root, no /tmp mount, uid 12345 without a passwd entry,
    HOME=/: nothing at start-up writes; 500 events scored, exit 0 when idle."""
    probe = podman("run", "--rm", *OPENSHIFT, "--entrypoint", "python", image, "-c", PROBE)
    assert "/tmp/probe writable" not in probe.stdout.splitlines(), "the run is not read-only"
    assert "uid 12345 0" in probe.stdout.splitlines()
    verify = podman("run", "--rm", *OPENSHIFT, image, "bundle", "verify", "/opt/bundles/penguins")
    assert "golden sample" in verify.stdout + verify.stderr
    stream = make_stream(tmp_path, 500, seed=28, poison_rate=0.02)
    research = research_in_image(image, stream.path, tmp_path / "research")
    topics = {k: unique_topic(f"ct-ro-{k}") for k in ("in", "out", "dlq")}
    for name in topics.values():
        create_topic(bootstrap, name, 1)
    produce_stream(bootstrap, topics["in"], stream)
    env = {
        "SCORING_WORKER_BOOTSTRAP_SERVERS": bootstrap,
        "SCORING_WORKER_INPUT_TOPIC": topics["in"],
        "SCORING_WORKER_OUTPUT_TOPIC": topics["out"],
        "SCORING_WORKER_DLQ_TOPIC": topics["dlq"],
        "SCORING_WORKER_GROUP_ID": unique_topic("ct-ro-group"),
        "SCORING_WORKER_METRICS_PORT": "0",
    }
    flags = [f"--env={k}={v}" for k, v in env.items()]
    done = podman("run", "--rm", "--network", "host", *OPENSHIFT, *flags, image, "run",
                  "--idle-timeout", "10", check=False, timeout_s=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    records = read_predictions(bootstrap, topics["out"], stream.valid)
    assert_exactly_once(verify_predictions(records, research), stream.valid)


def test_a_bundle_built_outside_the_image_loads_in_it(image: str, tmp_path: Path) -> None:
    """Issue 28, 10: the version policy. A bundle built by this checkout's Python (3.11.7)
    loads in the image (3.11.2 on the stand-in base): the patch level may differ, the
    golden sample re-scores bit for bit."""
    shared = tmp_path / "shared"
    shutil.copytree(demo_bundle(), shared / "penguins")
    for path in [tmp_path, *shared.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    shared.chmod(0o755)
    inside = podman("run", "--rm", "--entrypoint", "python", image, "-c",
                    "import platform; print(platform.python_version())").stdout.strip()  # fmt: skip
    verify = podman("run", "--rm", *HARDENED, "-v", f"{shared}:/mnt/bundles:ro", image,
                    "bundle", "verify", "/mnt/bundles/penguins", check=False)  # fmt: skip
    text = verify.stdout + verify.stderr
    print(f"\nFIGURE bundle built on {platform.python_version()}, image {inside}: {text!r}")
    assert verify.returncode == 0, text
    assert "identical" in text


def _ready(replica: Replica) -> bool:
    assert replica.running(), replica.logs()[-5:]
    return replica.get("/readyz")[0] == 200


def _counter(text: str, name: str) -> float:
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name)]
    return sum(values)
