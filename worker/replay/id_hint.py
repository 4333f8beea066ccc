"""Why two sets of records do not join by event id: a few ids from each side, in one line.

A record's ``event_id`` is the event field the bundle's ``id_column`` names when it has
one (``bundle inspect`` and the worker's ``start`` line show it), else the event's own
``event_id``. Records scored with two different id fields, or labels written with the
other one, share no id; an id field that repeats pairs different events. Either way
``parity`` and ``evaluate`` used to say only FAILED or "0 labelled events"; this line
shows what the ids look like on each side.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from worker.replay.evaluate import Joined

SAMPLE = 3


def sample(ids: Iterable[str], n: int = SAMPLE) -> list[str]:
    """The first ``n`` ids in sorted order (stable from run to run)."""
    return sorted(ids)[:n]


def id_mismatch_hint(
    sides: Sequence[tuple[str, Sequence[str]]],
    repeated: Sequence[tuple[str, str]] = (),
) -> str:
    """One line: ``sides`` are (name, a sample of its ids), ``repeated`` (name, what
    repeats: a sample of ids or a count); empty entries are left out."""
    shown = "; ".join(f"{name} has e.g. {', '.join(ids)}" for name, ids in sides if ids)
    parts = [f"event ids differ: {shown}"] if shown else []
    parts += [f"ids repeat in {name} ({what})" for name, what in repeated if what]
    return (
        "; ".join(parts) + ". A record's event_id is the event field the bundle's id_column "
        "names (bundle inspect, the worker's start line), else event_id, else the Kafka "
        "key: both sides need the same field, unique per event"
    )


def join_hint(joined: Joined, path: str = "labels") -> str:
    """``evaluate``'s hint when too few labelled events joined: ids from the labels and
    from each predictions file, and the files whose ids repeat; empty when some events
    joined and no id repeats (the ids are not the cause)."""
    if joined.ids and not any(m.duplicates for m in joined.models):
        return ""
    sides = [(path, sample(joined.labels.values))]
    sides += [(m.source, sample(m.predictions)) for m in joined.models]
    repeated = [(m.source, f"{m.duplicates} duplicates") for m in joined.models if m.duplicates]
    return id_mismatch_hint(sides, repeated)
