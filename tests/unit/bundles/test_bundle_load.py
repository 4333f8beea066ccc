"""Loading refuses anything tampered, newer, untrusted or irreproducible, naming the cause."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import skops.io as sio

import model_bundles.versions as versions_module
from model_bundles.bundle import load_bundle
from model_bundles.digest import canonical_json
from model_bundles.store import write_bundle
from schemas.errors import BundleError
from tests.support.evil_payload import MARKER_ENV, Evil
from worker.cli.main import run_cli


@pytest.fixture()
def bundle_copy(penguins_bundle_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(penguins_bundle_dir, tmp_path / "bundle"))


def _flip_one_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def _rewrite(bundle: Path, **replaced: bytes) -> None:
    """What an attacker with write access does: replace files and re-sign the manifest."""
    manifest: dict[str, Any] = orjson.loads((bundle / "manifest.json").read_bytes())
    files = {name: (bundle / name).read_bytes() for name in manifest["files"]}
    files.update(replaced)
    draft = {k: v for k, v in manifest.items() if k not in ("files", "digest")}
    write_bundle(bundle, draft, files)


@pytest.mark.parametrize("name", ["model.skops", "reference.json", "manifest.json"])
def test_one_changed_byte_refuses_the_load_naming_the_file(bundle_copy: Path, name: str) -> None:
    _flip_one_byte(bundle_copy / name, at=len((bundle_copy / name).read_bytes()) // 2)
    with pytest.raises(BundleError, match=name.replace(".", r"\.")):
        load_bundle(bundle_copy)


def test_cli_verify_exits_1_on_a_tampered_bundle(
    bundle_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _flip_one_byte(bundle_copy / "model.skops", at=100)
    assert run_cli(["bundle", "verify", str(bundle_copy)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.skops: digest mismatch" in err[0]


def test_a_newer_manifest_format_is_refused(bundle_copy: Path) -> None:
    manifest = orjson.loads((bundle_copy / "manifest.json").read_bytes())
    manifest["format_version"] = 99
    (bundle_copy / "manifest.json").write_bytes(canonical_json(manifest))
    with pytest.raises(BundleError, match="format version 99 is newer"):
        load_bundle(bundle_copy)


def test_an_untrusted_type_is_refused_before_any_code_runs(
    bundle_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "marker"
    monkeypatch.setenv(MARKER_ENV, str(marker))
    _rewrite(bundle_copy, **{"model.skops": sio.dumps(Evil())})
    with pytest.raises(
        BundleError,
        match=r"neither in the scikit-learn catalogue.*tests\.support\.evil_payload\.Evil",
    ):
        load_bundle(bundle_copy)
    assert not marker.exists()


def test_a_pickle_disguised_as_a_model_is_never_unpickled(
    bundle_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "marker"
    monkeypatch.setenv(MARKER_ENV, str(marker))
    _rewrite(bundle_copy, **{"model.skops": pickle.dumps(Evil())})
    with pytest.raises(BundleError, match="not a readable skops file"):
        load_bundle(bundle_copy)
    assert not marker.exists()


def test_a_version_mismatch_fails_unless_warn_only(
    bundle_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = versions_module.runtime_versions()
    monkeypatch.setattr(
        versions_module, "runtime_versions", lambda: {**real, "scikit-learn": "0.24.2"}
    )
    with pytest.raises(BundleError, match=r"scikit-learn .* in bundle, 0\.24\.2 here"):
        load_bundle(bundle_copy)
    warnings: list[str] = []
    bundle = load_bundle(bundle_copy, warn_only=True, warn=warnings.append)
    assert not bundle.selfcheck.ok
    assert any("0.24.2" in w for w in warnings)


def test_golden_outputs_that_do_not_come_back_fail_the_load(bundle_copy: Path) -> None:
    reference = orjson.loads((bundle_copy / "reference.json").read_bytes())
    scores = reference["golden"][3]["scores"]
    scores[0] = float(np.nextafter(scores[0], 1.0))  # one unit in the last place
    reference["golden"][3]["scores"] = scores
    _rewrite(bundle_copy, **{"reference.json": canonical_json(reference)})
    with pytest.raises(BundleError, match=r"golden row 3 \(batch size \d+\): scores differ"):
        load_bundle(bundle_copy)


def test_verify_passes_on_a_bundle_built_here(
    penguins_bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["bundle", "verify", str(penguins_bundle_dir)]) == 0
    out = capsys.readouterr().out
    assert (
        "golden sample: 69 rows at full size, the first 3 one at a time, "
        "the first 7 as one batch: identical"
    ) in out


def test_inspect_json_is_the_manifest(
    penguins_bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["bundle", "inspect", str(penguins_bundle_dir), "--json"]) == 0
    shown = orjson.loads(capsys.readouterr().out)
    on_disk = orjson.loads((penguins_bundle_dir / "manifest.json").read_bytes())
    assert shown == on_disk
