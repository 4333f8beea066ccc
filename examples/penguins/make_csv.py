"""Regenerate ``examples/penguins/penguins.csv`` from the ``palmerpenguins`` package.

The demo bundle's data fingerprint is only meaningful if anyone can rebuild the
exact bytes it was computed from, so this script is the provenance of the CSV:
run it and the file must come out byte-identical (``--check`` proves that
without touching the file).

The data is the Palmer penguins table exactly as ``palmerpenguins.load_penguins()``
returns it (344 rows, raw missing values kept), with one added first column,
``event_id`` (``penguin-0001`` ...), so that the training config can carry a
stable row id through to the holdout and golden sample.

Formatting is fixed here rather than left to ``DataFrame.to_csv`` so that the
bytes do not depend on the pandas version: a missing value is an empty cell,
an integral measurement is written without a decimal point (``181``, not
``181.0``) and any other number with Python's shortest round-trip ``repr``.
That reproduces the package's own CSV text, except that its ``NA`` markers
become empty cells.

Usage: ``python -m examples.penguins.make_csv [--check] [--output PATH]``.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import palmerpenguins

CSV_PATH = Path(__file__).with_name("penguins.csv")
COLUMNS = (
    "event_id",
    "species",
    "island",
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
    "sex",
    "year",
)


def format_cell(value: object) -> str:
    """Render one cell so the text is stable across pandas versions and keeps NAs empty."""
    if value is None:
        return ""
    if isinstance(value, float | int) and not isinstance(value, bool):
        number = float(value)
        if math.isnan(number):
            return ""
        if number.is_integer():
            return str(int(number))
        return repr(number)
    text = str(value)
    # pandas may hand back its own NA scalars for missing strings.
    return "" if text in {"nan", "<NA>", "NaN", "None"} else text


def render_csv() -> bytes:
    """Build the CSV bytes from the package data; pure apart from reading the package."""
    frame = palmerpenguins.load_penguins()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    source_columns = COLUMNS[1:]
    for position, row in enumerate(frame[list(source_columns)].itertuples(index=False), 1):
        cells = [format_cell(value) for value in row]
        writer.writerow([f"penguin-{position:04d}", *cells])
    return buffer.getvalue().encode("utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI edge: write the file, or with ``--check`` exit 1 when it differs from a rebuild."""
    parser = argparse.ArgumentParser(prog="python -m examples.penguins.make_csv")
    parser.add_argument("--output", type=Path, default=CSV_PATH, help="where to write the CSV")
    parser.add_argument(
        "--check", action="store_true", help="compare with the file instead of writing it"
    )
    args = parser.parse_args(argv)
    data = render_csv()
    output: Path = args.output
    if args.check:
        if output.exists() and output.read_bytes() == data:
            print(f"{output}: up to date ({len(data)} bytes)")
            return 0
        print(f"{output}: differs from a rebuild from palmerpenguins", file=sys.stderr)
        return 1
    output.write_bytes(data)
    print(f"wrote {output} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
