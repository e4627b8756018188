"""The W3C Baggage codec: the ``baggage`` header, read and written without raising.

A ``baggage`` value is a comma-separated list of ``key=value`` members, each
with optional ``;``-separated properties; keys are RFC 7230 tokens and values
percent-encoded UTF-8.  Malformed members are dropped, never raised: the
header comes from other processes.  Limits follow the specification's
minimums generously: at most 180 members and 8192 characters are read or
written; members past either limit are dropped whole.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import quote, unquote

if TYPE_CHECKING:
    from collections.abc import Sequence

#: The most list-members read from, or written to, one ``baggage`` value.
MAX_BAGGAGE_MEMBERS = 180
#: The most characters of ``baggage`` read or written; later members are dropped.
MAX_BAGGAGE_LENGTH = 8192

_OWS = " \t"
# RFC 7230 token: the only grammar for keys, in property keys too.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Keys repeat on every request, so the regular expression runs once per key.
# The set is bounded by the characters it holds, not by its entries: a key may
# be 8 KiB long, so a bound of entries alone let hostile keys pin megabytes.
# Real keys are short; once the budget is spent, new keys are checked each time.
_valid_keys: set[str] = set()
#: The most bytes the remembered keys may cost, each counted as its characters
#: (keys are ASCII) plus the str object and its set slot.
_MAX_REMEMBERED_KEY_BYTES = 64 * 1024
_KEY_OVERHEAD_BYTES = 80
_MAX_REMEMBERED_KEY_LENGTH = 128
_remembered_key_bytes = 0


class BaggageMember(NamedTuple):
    """One valid list-member: the key, the value as sent (percent-encoded), the properties."""

    key: str
    value: str
    #: The properties as sent, without whitespace, each preceded by ``;`` ('' for none).
    properties: str

    def header_text(self) -> str:
        """Return the member as it is written in a header."""
        return f"{self.key}={self.value}{self.properties}"


def parse_baggage(fields: Sequence[str]) -> dict[str, str]:
    """Return the members of ``baggage`` header fields as ``{key: decoded value}``.

    Fields are joined with ``,``.  Values are percent-decoded as UTF-8, bad
    sequences becoming U+FFFD as the specification says; properties are not
    part of the result.  When a key repeats, the last member wins.  Malformed
    members, and those past the limits, are dropped.
    """
    result: dict[str, str] = {}
    for text in _member_texts(fields):
        key, equals, value = text.partition("=")
        if ";" in value:  # properties: not in the result, but they must be valid
            member = _parse_member(text)
            if member is None:
                continue
            key, value = member[0], member[1]
        else:
            key = key.strip(_OWS)
            value = value.strip(_OWS)
            if (
                not equals
                or (value and not _is_valid_value(value))
                or (key not in _valid_keys and not _is_token(key))
            ):
                continue
        result[key] = unquote(value) if "%" in value else value
    return result


def baggage_members(fields: Sequence[str]) -> list[BaggageMember]:
    """Return the valid members of ``baggage`` header fields, in order, values still encoded."""
    members = []
    for text in _member_texts(fields):
        member = _parse_member(text)
        if member is not None:
            members.append(BaggageMember(*member))
    return members


def baggage_value(fields: Sequence[str], key: str) -> str | None:
    """Return the still percent-encoded value of the last valid ``key`` member, or ``None``."""
    found = None
    for text in _member_texts(fields):
        if key in text:
            member = _parse_member(text)
            if member is not None and member[0] == key:
                found = member[1]
    return found


def merge_baggage(fields: Sequence[str], key: str, encoded_value: str) -> str:
    """Return a ``baggage`` value with ``key=encoded_value`` first, then the other valid members.

    Members of ``fields`` with the same key are replaced, malformed ones are
    dropped, and members that would break the limits are dropped from the end.
    ``encoded_value`` must already be encoded (see :func:`encode_baggage_value`).
    """
    first = f"{key}={encoded_value}"
    if not fields:
        return first  # the usual outgoing call: no baggage of its own to parse
    parts = [first]
    length = len(first)
    for member in baggage_members(fields):
        if member.key == key:
            continue
        text = member.header_text()
        length += len(text) + 1
        if length > MAX_BAGGAGE_LENGTH or len(parts) == MAX_BAGGAGE_MEMBERS:
            break
        parts.append(text)
    return ",".join(parts)


def encode_baggage_value(value: str) -> str:
    """Percent-encode ``value`` as UTF-8; only ASCII letters, digits and ``-._~`` stay as they are.

    ``+`` is encoded too, so that decoders that read it as a space (form
    encoding) still get the value back exactly.
    """
    return quote(value, safe="")


def _member_texts(fields: Sequence[str]) -> list[str]:
    combined = fields[0] if len(fields) == 1 else ",".join(fields)
    if len(combined) > MAX_BAGGAGE_LENGTH:
        # Keep only the members that end within the limit.
        combined = combined[: MAX_BAGGAGE_LENGTH + 1]
        combined = combined[: max(combined.rfind(","), 0)]
    texts = combined.split(",")
    if len(texts) > MAX_BAGGAGE_MEMBERS:
        texts = [text for text in texts if text.strip(_OWS)][:MAX_BAGGAGE_MEMBERS]
    return texts


def _parse_member(text: str) -> tuple[str, str, str] | None:
    head, semicolon, properties = text.partition(";")
    key, equals, value = head.partition("=")
    if not equals:
        return None
    key = key.strip(_OWS)
    value = value.strip(_OWS)
    if (value and not _is_valid_value(value)) or (key not in _valid_keys and not _is_token(key)):
        return None
    if semicolon:
        normal = _normal_properties(properties)
        if normal is None:
            return None
        return key, value, normal
    return key, value, ""


def _normal_properties(properties: str) -> str | None:
    parts = []
    for text in properties.split(";"):
        name, equals, value = text.partition("=")
        name = name.strip(_OWS)
        if not _is_token(name):
            return None
        if equals:
            value = value.strip(_OWS)
            if value and not _is_valid_value(value):
                return None
            parts.append(f";{name}={value}")
        else:
            parts.append(f";{name}")
    return "".join(parts)


def _is_valid_value(value: str) -> bool:
    # baggage-octet: visible ASCII except DQUOTE, comma, semicolon and backslash;
    # commas and semicolons were split on already.
    return (
        value.isascii()
        and value.isprintable()
        and " " not in value
        and '"' not in value
        and "\\" not in value
    )


def _is_token(key: str) -> bool:
    global _remembered_key_bytes  # noqa: PLW0603 - the budget of the module's key memory
    if key in _valid_keys:
        return True
    if _TOKEN.fullmatch(key) is None:
        return False
    cost = len(key) + _KEY_OVERHEAD_BYTES
    if len(key) <= _MAX_REMEMBERED_KEY_LENGTH and (
        _remembered_key_bytes + cost <= _MAX_REMEMBERED_KEY_BYTES
    ):
        # Two threads may both add: the sum then runs slightly over, never far.
        _valid_keys.add(key)
        _remembered_key_bytes += cost
    return True
