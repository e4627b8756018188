"""Reading header fields by name from every kind of headers object, without ever raising."""

from __future__ import annotations

import email.message
import http.client
import io
import wsgiref.headers
from collections.abc import Iterator, Mapping

import pytest
import requests.structures
import starlette.datastructures
import werkzeug.datastructures

from tracectrl._headers import header_fields, header_values

NAMES = frozenset({"traceparent", "tracestate"})


class FakeMultiDict(Mapping[str, str]):
    """The parts of multidict.MultiDict tracectrl may touch: repeated keys, getall, items."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    def __getitem__(self, key: str) -> str:
        for name, value in self._pairs:
            if name == key:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def getall(self, key: str) -> list[str]:
        return [value for name, value in self._pairs if name == key]

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return list(self._pairs)


def test_plain_dict_is_read_in_any_case() -> None:
    headers = {"TraceParent": "a", "TRACESTATE": "b", "Content-Type": "c"}
    assert header_fields(headers, NAMES) == {"traceparent": ["a"], "tracestate": ["b"]}


def test_plain_dict_keys_differing_only_in_case_are_all_returned() -> None:
    headers = {"traceparent": "a", "Traceparent": "b"}
    assert header_fields(headers, NAMES) == {"traceparent": ["a", "b"]}


def test_plain_dict_list_values_are_separate_fields() -> None:
    headers = {"tracestate": ["foo=1", "bar=2"], "traceparent": ("x",)}
    assert header_fields(headers, NAMES) == {"tracestate": ["foo=1", "bar=2"], "traceparent": ["x"]}


def test_bytes_keys_and_values_are_read_as_ascii() -> None:
    headers = {b"TraceParent": b"abc", b"TraceState": [b"a=1", b"b=\xe9"]}
    assert header_fields(headers, NAMES) == {"traceparent": ["abc"], "tracestate": ["a=1"]}


def test_bytes_that_are_not_ascii_are_skipped() -> None:
    headers = [("traceparent", b"a\xe9"), (b"trace\xe9state", b"x=1")]
    assert header_fields(headers, NAMES) == {}


def test_values_of_other_types_are_skipped() -> None:
    headers = {"traceparent": 12, "tracestate": [None, "foo=1", 3.5], 7: "x", None: "y"}
    assert header_fields(headers, NAMES) == {"tracestate": ["foo=1"]}


def test_names_not_asked_for_are_not_returned() -> None:
    assert header_fields({"trace-parent": "a", "trace.state": "b"}, NAMES) == {}


def test_http_client_message_returns_every_field_in_order() -> None:
    raw = b"TraceParent: a\r\ntracestate: foo=1\r\ntraceparent: b\r\nTRACESTATE: bar=2\r\n\r\n"
    message = http.client.parse_headers(io.BytesIO(raw))
    assert header_fields(message, NAMES) == {
        "traceparent": ["a", "b"],
        "tracestate": ["foo=1", "bar=2"],
    }


def test_email_message_is_read_case_insensitively() -> None:
    message = email.message.Message()
    message["TRACEPARENT"] = "a"
    message["TraceState"] = "foo=1"
    assert header_fields(message, NAMES) == {"traceparent": ["a"], "tracestate": ["foo=1"]}


def test_wsgiref_headers_are_read() -> None:
    headers = wsgiref.headers.Headers([("Traceparent", "a"), ("traceparent", "b")])
    assert header_values(headers, "traceparent") == ["a", "b"]


def test_werkzeug_headers_return_repeated_fields() -> None:
    headers = werkzeug.datastructures.Headers([("TraceParent", "a"), ("traceparent", "b")])
    assert header_values(headers, "traceparent") == ["a", "b"]


def test_werkzeug_environ_headers_are_read() -> None:
    headers = werkzeug.datastructures.EnvironHeaders({"HTTP_TRACEPARENT": "a", "HTTP_X_OTHER": "b"})
    assert header_fields(headers, NAMES) == {"traceparent": ["a"]}


def test_starlette_headers_return_repeated_fields() -> None:
    headers = starlette.datastructures.Headers(
        raw=[(b"traceparent", b"a"), (b"tracestate", b"foo=1"), (b"traceparent", b"b")]
    )
    assert header_fields(headers, NAMES) == {"traceparent": ["a", "b"], "tracestate": ["foo=1"]}


def test_multidict_like_headers_return_repeated_fields_in_any_case() -> None:
    headers = FakeMultiDict([("Traceparent", "a"), ("tracestate", "foo=1"), ("traceparent", "b")])
    assert header_fields(headers, NAMES) == {"traceparent": ["a", "b"], "tracestate": ["foo=1"]}


def test_requests_case_insensitive_dict_is_read() -> None:
    headers = requests.structures.CaseInsensitiveDict({"TraceParent": "a"})
    assert header_values(headers, "traceparent") == ["a"]


def test_str_subclass_keys_are_read() -> None:
    assert header_values({CaseInsensitiveKey("TraceParent"): "a"}, "traceparent") == ["a"]


def test_asgi_style_list_of_byte_pairs_is_read() -> None:
    headers = [(b"traceparent", b"a"), (b"host", b"x"), (b"traceparent", b"b"), (b"bad",), "junk"]
    assert header_values(headers, "traceparent") == ["a", "b"]


class Exploding:
    def items(self) -> list[tuple[str, str]]:
        raise RuntimeError("boom")


class ExplodingGetAll:
    def get_all(self, name: str) -> list[str]:
        raise ValueError(name)


class UnprintableKey(str):
    def __str__(self) -> str:
        raise RuntimeError("no")


class CaseInsensitiveKey(str):
    """Like multidict's istr: a str subclass."""


@pytest.mark.parametrize(
    "headers",
    [
        None,
        42,
        "traceparent: a",
        b"traceparent",
        object(),
        Exploding(),
        ExplodingGetAll(),
        {UnprintableKey("TraceParent"): "a"},
        [("traceparent",)],
        [[b"traceparent", object()]],
        {frozenset(): "x"},
    ],
    ids=repr,
)
def test_unreadable_headers_give_no_fields_and_never_raise(headers: object) -> None:
    assert header_fields(headers, NAMES) == {}


def test_exploding_headers_are_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("DEBUG", logger="tracectrl"):
        assert header_fields(Exploding(), NAMES) == {}
    assert any(record.levelname == "DEBUG" for record in caplog.records)
