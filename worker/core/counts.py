"""Counts in what the commands print: ``1 message``, ``2 messages``, ``0 events``."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, the noun plural (``plural``, else noun + "s") unless 1."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
