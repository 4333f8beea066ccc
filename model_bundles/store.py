"""A bundle directory on disk: write it, and read it back only if it is intact and safe.

Layout: ``manifest.json``, ``model.skops`` (the fitted pipeline), ``reference.json``,
and optionally ``code/`` (the user's modules, see ``codepack``).
"""

from __future__ import annotations

import io
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import orjson
import skops.io as sio
from pydantic import ValidationError

from model_bundles.codepack import CODE_DIR, bundle_code, code_digest, code_files, code_modules
from model_bundles.digest import canonical_json, manifest_digest, sha256_bytes
from model_bundles.reference import Reference
from model_bundles.trust import pandas_nodes
from model_bundles.trust.catalogue import trusted_types
from model_bundles.trust.persistable import unsaveable_step, untrustable_step
from model_bundles.trust.policy import (
    FORBIDDEN_PACKAGES,
    REVIEWED_ROOTS,
    Trust,
    allowed_types,
    require_code_trust,
    root,
)
from schemas.errors import BadInputError, BundleError
from schemas.manifest import DIGEST_EXCLUDED, FORMAT_VERSION, Manifest, TrustSpec

MANIFEST = "manifest.json"
MODEL = "model.skops"
REFERENCE = "reference.json"

pandas_nodes.register()  # fitted pandas values (category_encoders' mappings) save and load
NEVER_TRUSTED = (FORBIDDEN_PACKAGES - {"__main__"}) | REVIEWED_ROOTS
"""Roots no option can trust; ``__main__`` has its own message (``proof.declared_trust``)."""


def dump_model(pipeline: Any) -> bytes:
    """The fitted pipeline as skops bytes (not yet canonical: ``digest.canonical_skops``).

    BadInputError (exit 2, one line) naming the step, its library and what to do
    when a step holds state skops cannot save, or a type no option can ever trust
    (the standard library, numpy/scipy/sklearn outside the catalogue); never a traceback.
    """
    try:
        data: bytes = sio.dumps(pipeline)
    except Exception as exc:  # skops and the libraries raise anything here
        raise BadInputError(unsaveable_step(pipeline, exc)) from None
    catalogue = trusted_types()
    for name in sorted(sio.get_untrusted_types(data=data)):
        if name not in catalogue and root(name) in NEVER_TRUSTED:
            raise BadInputError(untrustable_step(pipeline, name))
    return data


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
        (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / name).write_bytes(payload)
    file_digests = {n: sha256_bytes(p) for n, p in sorted(files.items())}
    # Digest the manifest exactly as it will be read back: validated, then dumped to JSON.
    draft = Manifest.model_validate({**manifest, "files": file_digests, "digest": ""})
    content = draft.model_dump(mode="json")
    content["digest"] = manifest_digest(content, DIGEST_EXCLUDED)
    (out_dir / MANIFEST).write_bytes(canonical_json(content))
    return Manifest.model_validate(content)


def read_bundle(bundle_dir: Path, trust: Trust | None = None) -> StoredBundle:
    """Read a bundle, refusing it (BundleError) on any digest, format or type problem.

    Every file is read and its digest checked before any type is built or any of
    the bundle's code imported; the code is then imported from those checked bytes.
    """
    manifest = read_manifest(bundle_dir)
    payloads = {name: _read_verified(bundle_dir, name, manifest) for name in manifest.files}
    _check_code(manifest.trust, payloads)
    for required in (MODEL, REFERENCE):
        if required not in payloads:
            raise BundleError(f"{bundle_dir}: manifest lists no {required}")
    try:
        reference = Reference.model_validate_json(payloads[REFERENCE])
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"]
        raise BundleError(f"{REFERENCE}: not a valid reference file: {problem}") from None
    pipeline = load_model(payloads, manifest.trust, trust or Trust())
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


def _check_code(declared: TrustSpec, payloads: dict[str, bytes]) -> None:
    """The manifest's code block must describe exactly the code files the bundle holds."""
    files = code_files(payloads)
    if declared.code is None:
        if files:
            raise BundleError(f"{MANIFEST}: the bundle holds code/ files its trust block omits")
        return
    if declared.code.digest != code_digest(files) or declared.code.modules != code_modules(files):
        raise BundleError(f"{MANIFEST}: the code block does not match the code/ files")


def _read_verified(bundle_dir: Path, name: str, manifest: Manifest) -> bytes:
    parts = PurePosixPath(name).parts
    nested_code = len(parts) > 1 and parts[0] == CODE_DIR
    if (
        ".." in parts
        or name.startswith("/")
        or "\\" in name
        or (len(parts) > 1 and not nested_code)
    ):
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


def load_model(payloads: dict[str, bytes], declared: TrustSpec, trust: Trust) -> Any:
    """Load the verified skops model, refusing (BundleError) any type the operator does not
    trust before building anything, and importing the bundle's code only when trusted."""
    payload = payloads[MODEL]
    try:
        untrusted = sio.get_untrusted_types(data=payload)
    except Exception as exc:  # a broken archive surfaces as anything from zipfile/json
        raise BundleError(f"{MODEL}: not a readable skops file: {exc}") from None
    allowed = allowed_types(untrusted, declared, trust)
    require_code_trust(declared, trust)
    code = declared.code
    context = bundle_code(payloads, code.digest) if code is not None else nullcontext()
    try:
        with context:
            return sio.load(io.BytesIO(payload), trusted=allowed)
    except Exception as exc:
        raise BundleError(f"{MODEL}: cannot load the model: {exc}") from None
