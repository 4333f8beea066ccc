"""The names on the wire are one module's, and the contract documents each of them."""

from __future__ import annotations

from pathlib import Path

from schemas import wire_names
from schemas.wire_names import RejectReason

CONTRACT = (Path(__file__).parents[3] / "docs" / "contract.md").read_text()


def test_every_header_name_is_in_the_contract() -> None:
    headers = {v for k, v in vars(wire_names).items() if k.startswith("HEADER_")}
    assert len(headers) == 11
    assert sorted(h for h in headers if f"`{h}`" not in CONTRACT) == []


def test_every_reason_is_in_the_contract() -> None:
    assert sorted(r.value for r in RejectReason if f"`{r.value}`" not in CONTRACT) == []
