"""What the worker writes: prediction records and dead letters.

The worker's hot path encodes records with orjson directly; these models are
the contract that encoding is tested against, and the source of the JSON Schemas.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas.manifest import Label


class RejectReason(StrEnum):
    """Why an event went to the dead-letter topic instead of the model."""

    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FEATURE = "missing_feature"
    WRONG_TYPE = "wrong_type"
    NON_FINITE = "non_finite"
    TOO_LARGE = "too_large"
    # --value-format avro|json-schema (worker.core.formats): no magic byte, or a schema of
    # another type; the registry has no such schema id; the payload does not decode with it
    WRONG_FORMAT = "wrong_format"
    UNKNOWN_SCHEMA = "unknown_schema"
    INVALID_PAYLOAD = "invalid_payload"
    # scored, but the broker refused its prediction record for good (too large, ...)
    OUTPUT_REJECTED = "output_rejected"
    # valid, but the pipeline raised on this event (alone); headers name the exception
    MODEL_ERROR = "model_error"


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


# Kafka header names of a dead letter. Public: operators filter on them.
HEADER_REASON = "scoring.reason"
HEADER_DETAIL = "scoring.detail"
HEADER_SOURCE_TOPIC = "scoring.source.topic"
HEADER_SOURCE_PARTITION = "scoring.source.partition"
HEADER_SOURCE_OFFSET = "scoring.source.offset"
HEADER_BUNDLE_DIGEST = "scoring.bundle.digest"
HEADER_ERROR_TYPE = "scoring.error.type"
HEADER_ERROR_MESSAGE = "scoring.error.message"


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
