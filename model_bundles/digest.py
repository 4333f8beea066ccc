"""Canonical bytes and digests: what makes two builds of a bundle comparable."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from typing import Any

import orjson

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    """Sorted keys, shortest round-trip floats, two-space indent, trailing newline."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


def manifest_digest(manifest: dict[str, Any], excluded: frozenset[str]) -> str:
    """Digest over the manifest minus its own digest and provenance; it names every file digest."""
    content = {k: v for k, v in manifest.items() if k not in excluded}
    return sha256_bytes(orjson.dumps(content, option=orjson.OPT_SORT_KEYS))


def canonical_skops(data: bytes) -> bytes:
    """Rewrite a skops archive so the same fitted object always gives the same bytes.

    skops names array files and tags shared objects by ``id()`` (a memory address)
    and stamps zip entries with the current time. Ids are renumbered in order of
    first appearance (the same old id keeps one new id, so sharing is preserved),
    array files are renamed likewise, and every entry gets a fixed timestamp.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    schema = json.loads(members.pop("schema.json"))
    ids: dict[int, int] = {}
    files: dict[str, str] = {}
    _renumber(schema, ids, files, set(members))
    unreferenced = set(members) - set(files)
    if unreferenced:
        raise ValueError(f"skops archive has files its schema never names: {sorted(unreferenced)}")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        _write(archive, "schema.json", json.dumps(schema, indent=2, sort_keys=False).encode())
        for old, new in sorted(files.items(), key=lambda item: item[1]):
            _write(archive, new, members[old])
    return out.getvalue()


_FILE_SUFFIX = re.compile(r"(\.[A-Za-z0-9]+)$")


def _renumber(node: Any, ids: dict[int, int], files: dict[str, str], names: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "__id__" and isinstance(value, int):
                node[key] = ids.setdefault(value, len(ids) + 1)
            elif isinstance(value, str) and value in names:
                if value not in files:
                    match = _FILE_SUFFIX.search(value)
                    files[value] = f"{len(files) + 1:06d}{match.group(1) if match else ''}"
                node[key] = files[value]
            else:
                _renumber(value, ids, files, names)
    elif isinstance(node, list):
        for item in node:
            _renumber(item, ids, files, names)


def _write(archive: zipfile.ZipFile, name: str, payload: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    archive.writestr(info, payload)
