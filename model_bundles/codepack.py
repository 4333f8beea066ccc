"""The user's own modules in a bundle's ``code/`` (SPEC "Trust", tier three).

At build, ``pack`` copies the ``.py`` files of each named module or package
into the bundle; their digests join the manifest's file digests, so the bundle
digest covers them, and ``code_digest`` names them all in one value that the
operator passes as ``--trust-code``. At load, ``bundle_code`` imports them from
the verified bytes held in memory: never from the working directory or
``sys.path``, never from the files on disk after they were checked.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from types import ModuleType

from model_bundles.digest import canonical_json, sha256_bytes
from schemas.errors import BadInputError

CODE_DIR = "code"
CodeItem = ModuleType | str | Path
"""A module object, an importable module name, or a path to a ``.py`` file or package."""


def pack(code: Sequence[CodeItem]) -> dict[str, bytes]:
    """Bundle file name (``code/...``) -> bytes for every ``.py`` file of the given modules.

    A submodule packs its whole top-level package, since importing it needs the package.
    """
    files: dict[str, bytes] = {}
    for item in code:
        for relative, payload in _files_of(item):
            name = f"{CODE_DIR}/{relative}"
            if files.get(name, payload) != payload:
                raise BadInputError(f"code: two different files would be packed as {name}")
            files[name] = payload
    if code and not files:
        raise BadInputError("code: no .py files found in what was given")
    return files


def code_files(files: Mapping[str, bytes]) -> dict[str, bytes]:
    return {n: p for n, p in files.items() if n.startswith(CODE_DIR + "/")}


def code_digest(files: Mapping[str, bytes]) -> str:
    """sha256 over the code files' names and digests (what ``--trust-code`` names)."""
    listing = {name: sha256_bytes(payload) for name, payload in sorted(code_files(files).items())}
    return sha256_bytes(canonical_json(listing))


def code_modules(files: Mapping[str, bytes]) -> list[str]:
    """Top-level module names the code provides."""
    return sorted({name.split(".")[0] for name in _sources(code_files(files))})


def _files_of(item: CodeItem) -> list[tuple[str, bytes]]:
    path = _path_of(item)
    if path.is_file() and path.suffix == ".py":
        if path.name == "__init__.py":
            path = path.parent
        else:
            return [(_checked(path.name), path.read_bytes())]
    if not (path / "__init__.py").is_file():
        raise BadInputError(f"code: {path} is neither a .py file nor a package directory")
    return [
        (_checked(f"{path.name}/{file.relative_to(path).as_posix()}"), file.read_bytes())
        for file in sorted(path.rglob("*.py"))
        if "__pycache__" not in file.parts
    ]


def _path_of(item: CodeItem) -> Path:
    if isinstance(item, Path) or (isinstance(item, str) and item.endswith(".py")):
        return Path(item)
    try:
        module = item if isinstance(item, ModuleType) else importlib.import_module(item)
    except ImportError as exc:
        raise BadInputError(f"code: cannot import {item!r}: {exc}") from None
    top = sys.modules[module.__name__.split(".")[0]]
    location = getattr(top, "__file__", None)
    if location is None:
        raise BadInputError(f"code: module {top.__name__} has no source file to pack")
    return Path(location)


def _checked(relative: str) -> str:
    parts = PurePosixPath(relative).with_suffix("").parts
    if not all(part.isidentifier() for part in parts if part != "__init__"):
        raise BadInputError(f"code: {relative} is not an importable module path")
    return relative


def _sources(files: Mapping[str, bytes]) -> dict[str, tuple[str, bytes, bool]]:
    """Module name -> (bundle file name, source, is a package)."""
    sources: dict[str, tuple[str, bytes, bool]] = {}
    for name, payload in files.items():
        parts = PurePosixPath(name).with_suffix("").parts[1:]
        package = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if package else parts)
        sources[module] = (name, payload, package)
    return sources


class _BundleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds and loads exactly the bundle's modules, from verified bytes in memory."""

    def __init__(self, sources: dict[str, tuple[str, bytes, bool]], digest: str) -> None:
        self.sources = sources
        self.digest = digest

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        found = self.sources.get(fullname)
        if found is None:
            return None
        origin = f"<bundle code {self.digest[:19]}>/{found[0]}"
        return importlib.util.spec_from_loader(fullname, self, origin=origin, is_package=found[2])

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        name, source, _ = self.sources[module.__name__]
        module.__bundle_code__ = self.digest  # type: ignore[attr-defined]
        origin = module.__spec__.origin if module.__spec__ else name
        exec(compile(source, origin or name, "exec", dont_inherit=True), module.__dict__)


@contextmanager
def bundle_code(files: Mapping[str, bytes], digest: str) -> Iterator[None]:
    """Within the block, the code modules import from ``files`` (already verified).

    In a process that imported other copies of these modules first (the build, a
    notebook), those are set aside during the block and put back after it; the
    loaded objects keep the bundle's copies. Otherwise the bundle's modules stay
    imported, and later imports of them come from the bundle too.
    """
    sources = _sources(code_files(files))
    tops = {name.split(".")[0] for name in sources}
    if all(getattr(sys.modules.get(t), "__bundle_code__", None) == digest for t in tops):
        yield
        return
    saved = {n: m for n, m in sys.modules.items() if n.split(".")[0] in tops}
    for name in saved:
        del sys.modules[name]
    finder = _BundleFinder(sources, digest)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        if saved:
            sys.meta_path.remove(finder)
            for name in [n for n in sys.modules if n.split(".")[0] in tops]:
                del sys.modules[name]
            sys.modules.update(saved)
