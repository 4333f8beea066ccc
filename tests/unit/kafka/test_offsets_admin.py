"""The worker's offset questions avoid the admin calls that crash librdkafka.

librdkafka (2.16 and earlier, librdkafka#5040) dereferences a NULL consumer group inside
an admin client when a ListConsumerGroupOffsets answer says NOT_COORDINATOR: the whole
process dies of SIGSEGV. It happened here after a broker restart (the broker-restart
integration test). The worker asks its own consumer instead (it has a group, so it
re-queries the coordinator); this guards every module of the product against the call.
"""

from __future__ import annotations

import ast
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from worker.kafka.offsets_admin import OffsetsAdmin, OffsetsAsker

PRODUCT = Path(__file__).resolve().parents[3] / "worker"
CRASHING_ADMIN_CALLS = {"list_consumer_group_offsets"}


def _calls(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    return {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }


@pytest.mark.parametrize("path", sorted(PRODUCT.rglob("*.py")), ids=lambda p: p.name)
def test_no_module_asks_group_offsets_through_the_admin_api(path: Path) -> None:
    assert not _calls(path) & CRASHING_ADMIN_CALLS, path


class _Consumer:
    def __init__(self) -> None:
        self.asked: list[tuple[list[tuple[str, int]], float]] = []

    def ask_committed(self, partitions: list[tuple[str, int]], timeout_s: float) -> Future[Any]:
        self.asked.append((list(partitions), timeout_s))
        out: Future[Any] = Future()
        out.set_result("answer")
        return out


def test_committed_offsets_come_from_the_consumer() -> None:
    consumer = _Consumer()
    asker = OffsetsAsker(OffsetsAdmin({"bootstrap.servers": "127.0.0.1:1"}), consumer)  # type: ignore[arg-type]
    assert asker.ask_committed([("in", 0), ("in", 3)], 2.0).result() == "answer"
    assert consumer.asked == [([("in", 0), ("in", 3)], 2.0)]
