"""Reading the files the one-shot commands are given: lines of a file (exit 2 when it
cannot be read) and the writer schemas a recording holds. Light to import: `record`,
`publish` and `parity` never import the scoring stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO

import click

from schemas.errors import BadInputError
from worker.core.recording import read_recording_items
from worker.core.wire import WriterSchema


class lines_of:
    """Lines of a file; BadInputError (exit 2) when it cannot be read."""

    def __init__(self, path: Path) -> None:
        try:
            self._file: IO[bytes] = path.open("rb")
        except OSError as exc:
            raise BadInputError(f"cannot read {path}: {exc.strerror}") from None

    def __enter__(self) -> Iterator[bytes]:
        return iter(self._file)

    def __exit__(self, *_: object) -> None:
        self._file.close()


def recorded_schemas(recording: Path) -> dict[int, WriterSchema]:
    """Schema id -> the writer schema a recording's schema lines hold (BadInputError, exit
    2, for a file that is not a recording)."""
    found: dict[int, WriterSchema] = {}
    with lines_of(recording) as lines:
        for item in read_recording_items(lines, str(recording)):
            if isinstance(item, WriterSchema):
                found[item.schema_id] = item
    return found


def note(message: str) -> None:
    """One line on stderr: what a command did."""
    click.echo(message, err=True)
