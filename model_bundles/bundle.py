"""A loaded bundle: the one object research code and the live worker both score with."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from model_bundles.events import check_event, events_to_frame, normalize_frame
from model_bundles.predict import Outputs, predict_outputs
from model_bundles.reference import Reference
from model_bundles.store import read_bundle
from model_bundles.trust.policy import Trust
from model_bundles.verify import golden_mismatches
from model_bundles.versions import POLICY, package_mismatches, version_mismatches
from schemas.errors import BundleError
from schemas.manifest import FeatureSpec, Manifest
from schemas.rejection import Rejection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SelfCheck:
    """What the load-time checks found; ``ok`` means versions and golden outputs matched."""

    version_problems: list[str] = field(default_factory=list)
    golden_problems: list[str] = field(default_factory=list)
    golden_rows: int = 0

    @property
    def ok(self) -> bool:
        return not self.version_problems and not self.golden_problems

    def problems(self) -> list[str]:
        return [*self.version_problems, *self.golden_problems]


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: Manifest
    pipeline: Any
    reference: Reference
    selfcheck: SelfCheck

    @property
    def features(self) -> list[FeatureSpec]:
        return list(self.manifest.features)

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def check_event(self, event: Mapping[str, Any]) -> Rejection | None:
        return check_event(event, self.manifest.features)

    def predict_events(self, events: Sequence[Mapping[str, Any]]) -> Outputs:
        """Score events that passed ``check_event``."""
        return predict_outputs(
            self.pipeline, events_to_frame(events, self.manifest.features), self.manifest.task
        )

    def predict_model_frame(self, frame: pd.DataFrame) -> Outputs:
        """Score a frame ``events_to_frame`` built (already in model dtypes and order)."""
        return predict_outputs(self.pipeline, frame, self.manifest.task)

    def predict_frame(self, frame: pd.DataFrame) -> Outputs:
        """Research API: score a DataFrame holding (at least) the feature columns."""
        missing = [f.name for f in self.manifest.features if f.name not in frame.columns]
        if missing:
            raise ValueError(f"frame lacks feature column(s): {', '.join(missing)}")
        normalized = normalize_frame(frame, self.manifest.features)
        return predict_outputs(self.pipeline, normalized, self.manifest.task)


def load_bundle(
    path: Path,
    *,
    warn_only: bool = False,
    trust_packages: Iterable[str] = (),
    trust_code: Iterable[str] = (),
    warn: Callable[[str], None] = log.warning,
) -> Bundle:
    """Load, verify digests and types, compare versions and re-score the golden sample.

    ``trust_packages`` (import names, e.g. ``feature_engine``) and ``trust_code``
    (``sha256:...`` code digests, as ``bundle inspect`` shows them) are the
    operator's trust decisions of SPEC "Trust"; nothing else beyond the
    scikit-learn catalogue is built or imported. A failed version or golden check
    raises BundleError unless ``warn_only``, in which case each problem goes to
    ``warn`` and ``selfcheck.ok`` is False. Digest, format and trust problems
    always raise; a malformed trust option raises BadInputError.
    """
    stored = read_bundle(path, Trust.of(trust_packages, trust_code))
    manifest = stored.manifest
    unchecked = Bundle(path, manifest, stored.pipeline, stored.reference, SelfCheck())
    selfcheck = SelfCheck(
        version_problems=version_mismatches(manifest.versions)
        + package_mismatches(manifest.trust.packages),
        golden_problems=golden_mismatches(unchecked),
        golden_rows=len(stored.reference.golden),
    )
    if not selfcheck.ok:
        if not warn_only:
            raise BundleError(_refusal(path, selfcheck))
        for problem in selfcheck.problems():
            warn(f"bundle self-check: {problem}")
    return Bundle(path, stored.manifest, stored.pipeline, stored.reference, selfcheck)


def _refusal(path: Path, selfcheck: SelfCheck) -> str:
    """One line: what differs, which versions must match and why, and the way out."""
    why = []
    if selfcheck.version_problems:
        why.append(POLICY)
    if selfcheck.golden_problems:
        why.append("the golden sample must re-score bit for bit")
    return (
        f"{path}: self-check failed: {'; '.join(selfcheck.problems())}. "
        f"{'; '.join(why)}. Install the bundle's versions or rebuild it here; "
        "--warn-only loads it anyway (scoring_bundle_selfcheck_ok 0)"
    )
