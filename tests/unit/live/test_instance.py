"""Derived instance ids: unique among live replicas, stable across a restart where possible."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from worker.live import instance
from worker.live.instance import claim_instance_id

SHAPE = re.compile(r"^(?P<host>.+)-(?P<slot>\d+)-(?P<token>[0-9a-f]{16})$")


def test_replicas_sharing_a_lock_dir_get_distinct_slots(tmp_path: Path) -> None:
    first, a = claim_instance_id("g", tmp_path)
    second, b = claim_instance_id("g", tmp_path)
    assert a is not None and b is not None
    one, two = SHAPE.match(first), SHAPE.match(second)
    assert one and two
    assert (one["slot"], two["slot"]) == ("0", "1")
    assert first != second
    a.close()
    b.close()


def test_a_restart_in_the_same_place_gets_its_old_id_back(tmp_path: Path) -> None:
    first, a = claim_instance_id("g", tmp_path)
    assert a is not None
    a.close()  # the process ended (or was killed: the kernel releases the lock)
    again, b = claim_instance_id("g", tmp_path)
    assert again == first
    assert b is not None
    b.close()


def test_same_host_name_with_separate_lock_dirs_never_collides(tmp_path: Path) -> None:
    """Containers with host networking: one hostname, each its own /tmp."""
    ids, handles = [], []
    for n in range(8):
        claimed, handle = claim_instance_id("g", tmp_path / f"container-{n}")
        ids.append(claimed)
        handles.append(handle)
    assert len(set(ids)) == 8
    assert {m["slot"] for m in map(SHAPE.match, ids) if m} == {"0"}
    for handle in handles:
        assert handle is not None
        handle.close()


def test_a_garbled_token_is_replaced(tmp_path: Path) -> None:
    claimed, handle = claim_instance_id("g", tmp_path)
    assert handle is not None
    handle.close()
    (lock,) = tmp_path.glob("g.*.0.lock")
    lock.write_bytes(b"not a token\n")
    again, handle = claim_instance_id("g", tmp_path)
    assert again != claimed and SHAPE.match(again)
    assert handle is not None
    handle.close()


def test_without_a_usable_lock_dir_the_id_is_random(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setattr(instance.socket, "gethostname", lambda: "vm 0")
    first, a = claim_instance_id("g", blocker / "locks")
    second, b = claim_instance_id("g", blocker / "locks")
    assert a is None and b is None
    assert first != second
    assert re.match(r"^vm-0-[0-9a-f]{16}$", first)


def test_no_usable_temporary_directory_still_gives_an_id(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A read-only root without a /tmp mount: gettempdir() itself raises (issue 28, 3)."""
    missing = tmp_path / "missing"
    for name in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.setenv(name, str(missing))
    monkeypatch.setattr(instance.tempfile, "tempdir", None)  # gettempdir()'s cache

    def nowhere() -> str:
        raise FileNotFoundError("No usable temporary directory found in [...]")

    monkeypatch.setattr(instance.tempfile, "gettempdir", nowhere)
    claimed, handle = claim_instance_id("g")
    assert handle is None
    assert re.fullmatch(r".+-[0-9a-f]{16}", claimed)
