"""Event ids: one rule for research ``score``, live ``run`` and ``replay``. Pure.

SPEC.md ("Events and records"): the id is the event's id field (a string as
it is; an integer with every digit, however large), else the Kafka key (its
UTF-8 text, or ``b64:<base64>`` when it is not valid UTF-8), else an id
derived from the event's bytes (``sha256:<hex>``). The derived id depends on
nothing but the bytes, so the same event gets the same id from a file line
and from a Kafka message, and two events share an id only if their bytes are
equal (``parity`` then pairs the copies in order).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

KEY_B64_PREFIX = "b64:"
DERIVED_PREFIX = "sha256:"


def key_id(key: bytes) -> str:
    """A Kafka key as an id: its text when it is UTF-8, else ``b64:`` and its base64."""
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return KEY_B64_PREFIX + base64.b64encode(key).decode("ascii")


def derived_id(value: bytes | None) -> str:
    """The id of an event that has neither id field nor key: sha256 of its bytes."""
    return DERIVED_PREFIX + hashlib.sha256(value or b"").hexdigest()


def fallback_id(key: bytes | None, value: bytes | None) -> str:
    """The id when the event has no usable id field: the key, else its bytes' digest."""
    if key:
        return key_id(key)
    return derived_id(value)


def field_id(event: Mapping[str, Any], id_field: str, value: bytes | None) -> str | None:
    """The id field as text: a string as it is, an integer in full; None when not usable.

    orjson reads an integer beyond 64 bits as a float; the id is then read again
    from ``value`` with the standard library, which keeps every digit.
    """
    found = event.get(id_field)
    if isinstance(found, str):
        return found
    if isinstance(found, float) and value is not None:
        found = _exact_field(value, id_field)
    if isinstance(found, int) and not isinstance(found, bool):
        return str(found)
    return None


def _exact_field(value: bytes, id_field: str) -> Any:
    try:
        event = json.loads(value)
    except ValueError:  # also: an integer beyond Python's digit limit for str()
        return None
    return event.get(id_field) if isinstance(event, dict) else None


def event_id(
    event: Mapping[str, Any], id_field: str, key: bytes | None, value: bytes | None
) -> str:
    """The event's id by SPEC's rule (field, else key, else derived from the bytes)."""
    found = field_id(event, id_field, value)
    return found if found is not None else fallback_id(key, value)


ID_SAMPLE = 3
"""How many ids of each side a hint shows."""


def sample_ids(ids: Iterable[str], n: int = ID_SAMPLE) -> list[str]:
    """The first ``n`` ids in sorted order (stable from run to run)."""
    return sorted(ids)[:n]


def id_mismatch_hint(
    sides: Sequence[tuple[str, Sequence[str]]],
    repeated: Sequence[tuple[str, str]] = (),
) -> str:
    """Why two sets of records do not join by event id, in one line (``parity`` and
    ``evaluate``, issue 28): ``sides`` are (name, a sample of its ids), ``repeated`` (name,
    what repeats: a sample of ids or a count); empty entries are left out.

    Records scored with two different id fields, or labels written with the other one,
    share no id; an id field that repeats pairs different events."""
    shown = "; ".join(f"{name} has e.g. {', '.join(ids)}" for name, ids in sides if ids)
    parts = [f"event ids differ: {shown}"] if shown else []
    parts += [f"ids repeat in {name} ({what})" for name, what in repeated if what]
    return (
        "; ".join(parts) + ". A record's event_id is the event field the bundle's id_column "
        "names (bundle inspect, the worker's start line), else event_id, else the Kafka "
        "key: both sides need the same field, unique per event"
    )
