"""The names on the wire: Kafka header names and dead-letter reason codes.

Public: operators filter on them and docs/contract.md lists them; a name changed here
changes the contract. The headers carry what changes from run to run (instance, time)
and why an event was refused, never the body, so replaying a topic yields the same bodies.
"""

from __future__ import annotations

from enum import StrEnum


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


# A prediction record's headers (and a challenger's): what changes from run to run.
HEADER_INSTANCE = "scoring.instance"
HEADER_SCORED_AT = "scoring.scored_at_ms"

# A dead letter's headers (SPEC "dead-letter topic"). Public: operators filter on them.
HEADER_REASON = "scoring.reason"
HEADER_DETAIL = "scoring.detail"
HEADER_SOURCE_TOPIC = "scoring.source.topic"
HEADER_SOURCE_PARTITION = "scoring.source.partition"
HEADER_SOURCE_OFFSET = "scoring.source.offset"
HEADER_BUNDLE_DIGEST = "scoring.bundle.digest"
HEADER_ERROR_TYPE = "scoring.error.type"
HEADER_ERROR_MESSAGE = "scoring.error.message"
HEADER_TRUNCATED = "scoring.value.truncated"
"""A dead letter whose value was cut to fit the topic: the original length in bytes."""
