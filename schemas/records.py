"""What the worker writes: prediction records and dead letters.

The worker's hot path encodes records with orjson directly; these models are
the contract that encoding is tested against, and the source of the JSON Schemas.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.manifest import Label
from schemas.wire_names import (
    HEADER_BUNDLE_DIGEST,
    HEADER_DETAIL,
    HEADER_ERROR_MESSAGE,
    HEADER_ERROR_TYPE,
    HEADER_REASON,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
    RejectReason,
)


class ModelRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    digest: str


class SourceRef(BaseModel):
    """Where the scored event was read from; absent for research `score` output."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    topic: str
    partition: int
    offset: int
    timestamp: int | None = Field(description="Kafka message timestamp, epoch milliseconds")


class PredictionRecord(BaseModel):
    """One per valid event, on the output topic or in a predictions file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str
    prediction: Label
    scores: dict[str, float] | None = Field(
        default=None, description="class label -> probability (classification only)"
    )
    decision: dict[str, float] | None = Field(
        default=None,
        description="instead of scores, for a classifier without probabilities: class label -> "
        "decision function value; one entry (the positive class) for a binary model",
    )
    model: ModelRef
    source: SourceRef | None = None


class DeadLetter(BaseModel):
    """One per rejected event: the original bytes plus why (sent as Kafka headers).

    In JSON (files, schemas) ``value`` is base64, since a rejected event need not be UTF-8.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64"
    )

    reason: RejectReason
    detail: str
    source: SourceRef | None = None
    bundle_digest: str
    value: bytes | None = Field(description="the original message value, untouched")
    error_type: str | None = Field(
        default=None, description="model_error: the exception's class name (e.g. ValueError)"
    )
    error_message: str | None = Field(
        default=None, description="model_error: the exception message's first line, bounded"
    )

    def headers(self) -> list[tuple[str, bytes]]:
        headers = [
            (HEADER_REASON, self.reason.value.encode()),
            (HEADER_DETAIL, self.detail.encode()),
            (HEADER_BUNDLE_DIGEST, self.bundle_digest.encode()),
        ]
        if self.source is not None:
            headers += [
                (HEADER_SOURCE_TOPIC, self.source.topic.encode()),
                (HEADER_SOURCE_PARTITION, str(self.source.partition).encode()),
                (HEADER_SOURCE_OFFSET, str(self.source.offset).encode()),
            ]
        if self.error_type is not None:
            headers.append((HEADER_ERROR_TYPE, self.error_type.encode()))
        if self.error_message is not None:
            headers.append((HEADER_ERROR_MESSAGE, self.error_message.encode()))
        return headers
