"""A file that appears only complete: its lines are written aside (``.NAME.partial``),
then renamed over the path on ``commit``; ``discard`` leaves nothing behind. `record`'s
recordings and `replay`'s prediction files are written this way, so a run that failed
half way never leaves a file that looks whole."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TypeVar

from schemas.errors import BadInputError


class CompleteFile:
    """JSON lines written aside, renamed on ``commit`` (BadInputError, exit 2, when the
    file cannot be written)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._partial = path.with_name(f".{path.name}.partial")
        try:
            self._out: IO[bytes] = self._partial.open("wb")
        except OSError as exc:
            raise BadInputError(f"cannot write {path}: {exc.strerror}") from None

    def write_lines(self, lines: Iterable[bytes]) -> None:
        self._out.writelines(line + b"\n" for line in lines)

    def commit(self) -> None:
        self._out.close()
        os.replace(self._partial, self.path)

    def discard(self) -> None:
        self._out.close()
        self._partial.unlink(missing_ok=True)


F = TypeVar("F", bound=CompleteFile)


@contextmanager
def written(path: Path, kind: Callable[[Path], F]) -> Iterator[F]:
    """``kind(path)``, committed when the block ends, discarded when it raises."""
    sink = kind(path)
    try:
        yield sink
    except BaseException:
        sink.discard()
        raise
    sink.commit()
