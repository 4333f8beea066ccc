"""Docs that must stay true to the code (issue 28: an operator found them wrong)."""

from __future__ import annotations

import re
from pathlib import Path

from schemas.records import RejectReason

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _endpoint_table() -> list[str]:
    text = (DOCS / "metrics.md").read_text()
    start = text.index("| path | answer |")
    table = []
    for line in text[start:].splitlines():
        if not line.startswith("|"):
            break
        table.append(line)
    return table


def test_each_endpoint_is_defined_once_in_one_table() -> None:
    rows = _endpoint_table()
    paths = [row.split("|")[1].strip() for row in rows[2:]]
    assert paths == ["`/metrics`", "`/healthz`", "`/readyz`"]
    text = (DOCS / "metrics.md").read_text()
    for path in paths:  # not a second, different definition after a blank line
        assert text.count(f"| {path} |") == 1, path


def test_every_reject_reason_is_listed_with_the_rejected_counter() -> None:
    text = (DOCS / "metrics.md").read_text()
    row = next(r for r in text.splitlines() if r.startswith("| `scoring_events_rejected_total`"))
    listed = set(re.findall(r"`([a-z_]+)`", row))
    missing = {str(reason) for reason in RejectReason} - listed
    assert not missing, f"docs/metrics.md lacks reject reasons {sorted(missing)}"
