"""`bundle check`'s table: the `*` footnote only under a table that has a `*` (issue 28)."""

from __future__ import annotations

from model_bundles.bundle import Bundle
from worker.research.bundle_check import CheckReport, FeatureCounts

FOOTNOTE = "(* a null is not imputed: it is a dead letter)"


def _table(bundle: Bundle, nullable: bool) -> list[str]:
    features = [f.model_copy(update={"nullable": nullable}) for f in bundle.features]
    return CheckReport("s.jsonl", features=[FeatureCounts(f) for f in features]).table()


def test_the_footnote_shows_only_when_a_feature_has_a_star(penguins_bundle: Bundle) -> None:
    every = _table(penguins_bundle, nullable=True)
    assert not any(line.rstrip().endswith(" *") for line in every) and FOOTNOTE not in every
    none = _table(penguins_bundle, nullable=False)
    assert FOOTNOTE in none and any(" * " in line for line in none)
