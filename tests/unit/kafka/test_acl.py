"""Authorization errors name the ACL that is missing."""

from __future__ import annotations

from worker.kafka.acl import with_acl
from worker.kafka.types import FailureKind, KafkaFailure


def test_a_topic_authorization_error_names_the_acl_and_topics() -> None:
    exc = KafkaFailure(FailureKind.AUTH, "TOPIC_AUTHORIZATION_FAILED", "Topic authorization failed")
    named = with_acl(exc, "WRITE", ["out", "dlq", "out"])
    assert named.kind is FailureKind.AUTH and named.code == exc.code
    assert str(named) == (
        "TOPIC_AUTHORIZATION_FAILED: Topic authorization failed; "
        "needs ACL ALLOW WRITE on topic dlq, out"
    )


def test_group_and_transactional_id_errors_name_their_resource() -> None:
    group = KafkaFailure(FailureKind.AUTH, "GROUP_AUTHORIZATION_FAILED", "no")
    assert str(with_acl(group, "READ", ["g"])).endswith("needs ACL ALLOW READ on group g")
    txn = KafkaFailure(FailureKind.AUTH, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", "no")
    assert "ALLOW WRITE on transactional-id g-1" in str(with_acl(txn, "WRITE", ["g-1"]))


def test_other_errors_are_left_alone() -> None:
    exc = KafkaFailure(FailureKind.AUTH, "_AUTHENTICATION", "invalid credentials")
    assert with_acl(exc, "WRITE", ["out"]) is exc
