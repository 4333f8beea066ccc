"""A bundle directory on disk: write it, and read it back only if it is intact and safe.

Layout: ``manifest.json``, ``model.skops`` (the fitted pipeline), ``reference.json``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import skops.io as sio
from pydantic import ValidationError

from model_bundles.digest import canonical_json, manifest_digest, sha256_bytes
from model_bundles.errors import BundleError
from model_bundles.reference import Reference
from model_bundles.trusted import TRUSTED_TYPES
from schemas.manifest import DIGEST_EXCLUDED, FORMAT_VERSION, Manifest

MANIFEST = "manifest.json"
MODEL = "model.skops"
REFERENCE = "reference.json"


@dataclass(frozen=True)
class StoredBundle:
    """The verified contents of a bundle directory, before any self-check."""

    manifest: Manifest
    pipeline: Any
    reference: Reference


def write_bundle(out_dir: Path, manifest: dict[str, Any], files: dict[str, bytes]) -> Manifest:
    """Write files, then the manifest with their digests and the bundle digest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, payload in files.items():
        (out_dir / name).write_bytes(payload)
    file_digests = {n: sha256_bytes(p) for n, p in sorted(files.items())}
    # Digest the manifest exactly as it will be read back: validated, then dumped to JSON.
    draft = Manifest.model_validate({**manifest, "files": file_digests, "digest": ""})
    content = draft.model_dump(mode="json")
    content["digest"] = manifest_digest(content, DIGEST_EXCLUDED)
    (out_dir / MANIFEST).write_bytes(canonical_json(content))
    return Manifest.model_validate(content)


def read_bundle(bundle_dir: Path, extra_trusted: frozenset[str] = frozenset()) -> StoredBundle:
    """Read a bundle, refusing it (BundleError) on any digest, format or type problem."""
    manifest = read_manifest(bundle_dir)
    payloads = {name: _read_verified(bundle_dir, name, manifest) for name in manifest.files}
    for required in (MODEL, REFERENCE):
        if required not in payloads:
            raise BundleError(f"{bundle_dir}: manifest lists no {required}")
    try:
        reference = Reference.model_validate_json(payloads[REFERENCE])
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"]
        raise BundleError(f"{REFERENCE}: not a valid reference file: {problem}") from None
    pipeline = load_model(payloads[MODEL], TRUSTED_TYPES | extra_trusted)
    return StoredBundle(manifest, pipeline, reference)


def read_manifest(bundle_dir: Path) -> Manifest:
    path = bundle_dir / MANIFEST
    try:
        raw = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise BundleError(f"{bundle_dir}: not a bundle (no {MANIFEST})") from None
    except orjson.JSONDecodeError as exc:
        raise BundleError(f"{MANIFEST}: not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise BundleError(f"{MANIFEST}: not a JSON object")
    found = raw.get("format_version")
    if not isinstance(found, int) or found > FORMAT_VERSION:
        raise BundleError(
            f"{MANIFEST}: format version {found!r} is newer than this scoring-worker "
            f"reads ({FORMAT_VERSION}); upgrade scoring-worker"
        )
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BundleError(f"{MANIFEST}: {where}: {first['msg']}") from None
    expected = manifest_digest(raw, DIGEST_EXCLUDED)
    if manifest.digest != expected:
        raise BundleError(
            f"{MANIFEST}: content does not match its digest {manifest.digest} "
            f"(computed {expected}): the manifest was modified"
        )
    return manifest


def _read_verified(bundle_dir: Path, name: str, manifest: Manifest) -> bytes:
    if Path(name).name != name:
        raise BundleError(f"{MANIFEST}: file name {name!r} leaves the bundle directory")
    try:
        payload = (bundle_dir / name).read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{name}: missing from the bundle") from None
    actual = sha256_bytes(payload)
    if actual != manifest.files[name]:
        raise BundleError(
            f"{name}: digest mismatch ({actual}, manifest says {manifest.files[name]}): "
            "the file was modified"
        )
    return payload


def load_model(payload: bytes, trusted: frozenset[str]) -> Any:
    """Load a skops model, refusing any type outside ``trusted`` before building anything."""
    try:
        untrusted = sio.get_untrusted_types(data=payload)
    except Exception as exc:  # a broken archive surfaces as anything from zipfile/json
        raise BundleError(f"{MODEL}: not a readable skops file: {exc}") from None
    refused = sorted(set(untrusted) - trusted)
    if refused:
        raise BundleError(f"{MODEL}: untrusted type(s) in the model file: {', '.join(refused)}")
    try:
        return sio.load(io.BytesIO(payload), trusted=sorted(untrusted))
    except Exception as exc:
        raise BundleError(f"{MODEL}: cannot load the model: {exc}") from None
