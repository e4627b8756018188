"""Any message broker: the header forms brokers use carry the session and trace, with no broker.

Each form is made from ``propagation_headers()`` by the one line the docs give
for that broker, and read back by ``continue_session``/``extract_trace_headers``.
"""

from __future__ import annotations

from typing import Callable

import pytest

from tracectrl import (
    continue_session,
    current_session_id,
    current_trace,
    extract_trace_headers,
    propagation_headers,
    session_scope,
)

pytestmark = pytest.mark.usefixtures("trace_backend")

FORMS: dict[str, Callable[[dict[str, str]], object]] = {
    # Kafka (confluent-kafka, kafka-python, aiokafka): a list of (str, bytes) pairs.
    "kafka": lambda headers: [(k, v.encode("ascii")) for k, v in headers.items()],
    # RabbitMQ with pika: BasicProperties(headers=...), values str or bytes.
    "pika-bytes": lambda headers: {k: v.encode("ascii") for k, v in headers.items()},
    "pika-str": dict,
    # Kafka pairs with names in another case, as some producers write them.
    "kafka-upper": lambda headers: [(k.upper(), v.encode("ascii")) for k, v in headers.items()],
    # SQS message attributes, turned back into plain headers on receipt.
    "sqs": lambda headers: {
        k: attribute["StringValue"]
        for k, attribute in {
            k: {"DataType": "String", "StringValue": v} for k, v in headers.items()
        }.items()
    },
}


@pytest.mark.parametrize("form", FORMS)
def test_broker_header_forms_continue_the_session_and_trace(form: str) -> None:
    with session_scope("broker-session"):
        message = FORMS[form](propagation_headers())
        sent = current_trace()
    assert sent is not None
    with continue_session(message) as session_id:
        assert session_id == "broker-session"
        assert current_session_id() == "broker-session"
        received = current_trace()
        assert received is not None
        assert received.trace_id == sent.trace_id
    assert current_session_id() is None


@pytest.mark.parametrize("form", FORMS)
def test_extract_trace_headers_reads_broker_header_forms(form: str) -> None:
    with session_scope("broker-session"):
        message = FORMS[form](propagation_headers())
        sent = current_trace()
    assert sent is not None
    extracted = extract_trace_headers(message)
    assert extracted is not None
    assert extracted.trace_id == sent.trace_id


HOSTILE_MESSAGES: list[object] = [
    [("X-TraceCtrl-Session", b"caf\xc3\xa9"), ("baggage", b"session.id=\xff")],
    [("X-TraceCtrl-Session", None), ("X-TraceCtrl-Session", 42)],
    [("x-tracectrl-session", b"one"), ("X-TRACECTRL-SESSION", b"two")],
    {"X-TraceCtrl-Session": b"a\r\nb", "traceparent": b"00-\xff-x-01"},
    [("X-TraceCtrl-Session",), ("traceparent", b"a", b"b"), 7, None],
]


@pytest.mark.parametrize("message", HOSTILE_MESSAGES)
def test_hostile_broker_headers_start_a_new_session(message: object) -> None:
    with continue_session(message) as session_id:
        assert session_id not in {"café", "one", "two", "a\r\nb"}
        assert len(session_id) == 36  # a new UUID session
    assert extract_trace_headers(message) is None


def test_bytes_session_header_is_read_from_a_kafka_pair() -> None:
    message = [("X-TraceCtrl-Session", b"tenant%2Fkafka"), ("other", b"\x00\xff")]
    with continue_session(message) as session_id:
        assert session_id == "tenant/kafka"
