"""A transaction nobody will finish holds an output partition: the worker reports it, tries
what a client can (a new producer), then stops (exit 3) with the command that aborts it;
that command, run as printed, clears it."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from kafka_broker import TopicFactory, end_offsets
from transactions_tool import kafka_transactions, open_transaction_forever
from worker_harness import (
    FAST_GROUP,
    Topics,
    WorkerProcess,
    cached_stream,
    produce_stream,
    stop_all,
)

TRANSACTION_TIMEOUT_S = 20


def test_hanging_transaction_is_reported_then_exit_3_with_the_abort_command(
    bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    stream = cached_stream(2_000, seed=71)
    topics = Topics(input=topic_factory(2), output=topic_factory(2), dlq=topic_factory(1))
    produce_stream(bootstrap, topics.input, stream)
    kafka = (*FAST_GROUP, f"producer.transaction.timeout.ms={TRANSACTION_TIMEOUT_S * 1000}")
    with open_transaction_forever(bootstrap, topics.output, 1) as start_offset:
        worker = WorkerProcess(bootstrap, topics, tmp_path, "watch", kafka=kafka)
        try:
            worker.wait_event("start", 120)
            started = time.monotonic()
            code = worker.wait(120)
            took_s = time.monotonic() - started
        finally:
            stop_all([worker])
        text = worker.log_path.read_text().splitlines()
        reported = worker.events("hanging_transaction")
        last = text[-1]
        print(f"\nFIGURE hanging: exit {code} {took_s:.1f}s after start; {last[:400]}")
        assert code == 3, "\n".join(text[-20:])
        assert len(reported) == 1 and reported[0]["action"].startswith("replacing")
        assert f"{topics.output}:1 (last stable offset {start_offset}" in last
        # the transaction is there from the worker's start: exit within two timeouts of it
        assert took_s < 2 * TRANSACTION_TIMEOUT_S
        command = last.split("abort it with: ", 1)[1]
        assert command.startswith(f"kafka-transactions.sh --bootstrap-server {bootstrap} abort")
        args = shlex.split(command)[1:]
        assert args[args.index("--start-offset") + 1] == str(start_offset)
        done = kafka_transactions(*args)
        assert done.returncode == 0, done.stderr[-2000:]
        assert (
            end_offsets(bootstrap, topics.output, "read_committed")[1]
            == end_offsets(bootstrap, topics.output)[1]
        ), "the printed command aborted the transaction"
