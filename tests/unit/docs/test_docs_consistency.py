"""Docs that must stay true to the code (issue 28: an operator found them wrong)."""

from __future__ import annotations

import re
from pathlib import Path

from schemas.wire_names import RejectReason

DOCS = Path(__file__).resolve().parents[3] / "docs"


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


def test_the_bundle_examples_show_the_digest_the_penguins_build_gives(
    penguins_bundle_dir: Path,
) -> None:
    """docs/bundle.md's `bundle build` / `bundle verify` examples (issue 28: a stale digest).
    The digest covers the library versions: after `make lock` changes one, rerun
    `scoring-worker bundle build --config examples/penguins/config.toml --data
    examples/penguins/penguins.csv --out bundles/penguins` and update the examples."""
    import orjson

    digest = orjson.loads((penguins_bundle_dir / "manifest.json").read_bytes())["digest"]
    text = (DOCS / "bundle.md").read_text()
    shown = set(re.findall(r"penguins-species 1\.0\.0 sha256:([0-9a-f]{8})\.\.\.", text))
    assert shown == {digest.removeprefix("sha256:")[:8]}, (shown, digest)
