"""Reading header fields by name, case-insensitively, from whatever a framework hands over.

Incoming headers arrive as a plain ``dict`` (keys in any case, values a
``str`` or a list of them), an :class:`email.message.Message` or
:class:`http.client.HTTPMessage`, Werkzeug or Starlette ``Headers``, a
``multidict``, any other mapping, or a list of ``(name, value)`` pairs as in
an ASGI scope.  Message brokers hand over the same shapes with ``bytes``
values: a ``dict[str, bytes]`` (pika, Celery) or a list of ``(str, bytes)``
pairs (Kafka clients), where a header may repeat or have no value.  Every
field of a name is returned, in order, so that repeated ``traceparent``
fields can be refused and repeated ``tracestate`` fields joined.
Nothing here raises: input that cannot be read gives no fields.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Iterator, Sequence

_log = logging.getLogger("tracectrl.headers")


def header_fields(headers: object, names: Collection[str]) -> dict[str, list[str]]:
    """Return every field value of each of ``names`` (lowercase) found in ``headers``.

    Names are matched without regard to case; a name with no field is absent
    from the result.  ``bytes`` names and values are read as ASCII, the only
    characters these fields may hold; a ``bytes`` name or value that is not
    ASCII is skipped, and so are values of any other type (``None``, numbers).  An object that fails
    while being read gives ``{}``.
    """
    found: dict[str, list[str]] = {}
    try:
        if type(headers) is dict and len(headers) <= len(names):
            # A carrier of propagation fields alone (what inject makes, a
            # message's headers): when each key is one of ``names`` as given,
            # with a str value, lookups by name find every field and no key is
            # lowered.  Any other key (a second "Traceparent", bytes) or value
            # is left over, and the scan below reads every field in order.
            for name in names:
                value = headers.get(name)
                if type(value) is str:
                    found[name] = [value]
            if len(found) == len(headers):
                return found
            found = {}
        if isinstance(headers, dict):
            # The usual carrier: its items are always (hashable key, value) pairs.
            items: Iterable[tuple[object, object]] = headers.items()
        else:
            # email.message.Message, http.client.HTTPMessage, wsgiref and
            # Werkzeug Headers answer repeated fields case-insensitively
            # through get_all; Starlette Headers through getlist.
            get_all = getattr(headers, "get_all", None) or getattr(headers, "getlist", None)
            if callable(get_all):
                for name in names:
                    values = _strings(get_all(name))
                    if values:
                        found[name] = values
                return found
            # Any other mapping (a multidict's items() lists repeated fields
            # too), or a list of pairs as in an ASGI scope.
            items_of = getattr(headers, "items", None)
            if callable(items_of):
                items = _pairs(items_of())
            elif isinstance(headers, (list, tuple)):
                items = _pairs(headers)
            else:
                return found
        for key, value in items:
            # Most names arrive in lowercase (HTTP/2, ASGI, our own inject): one
            # lookup, with the hash the key already carries, settles those.
            if key in names:
                name = key if type(key) is str else str(key)
            elif type(key) is str:
                name = key.lower()
                if name not in names:
                    continue
            elif isinstance(key, (str, bytes)):
                text = _string(key)
                if text is None:
                    continue
                name = text.lower()
                if name not in names:
                    continue
            else:
                continue
            if type(value) is str:
                if name in found:
                    found[name].append(value)
                else:
                    found[name] = [value]
            else:
                values = _strings(value)
                if values:
                    found.setdefault(name, []).extend(values)
    except Exception:
        _log.debug("ignored unreadable headers of type %s", type(headers).__name__, exc_info=True)
        return {}
    return found


def header_values(headers: object, name: str) -> list[str]:
    """Return every field value of ``name`` (lowercase) in ``headers``, in order.

    The same reading as :func:`header_fields`, for one name.
    """
    return header_fields(headers, (name,)).get(name, [])


def header_field_pair(
    headers: object, first: str, second: str
) -> tuple[Sequence[str], Sequence[str]]:
    """Return every field value of ``first`` and of ``second`` (two lowercase names) in ``headers``.

    The same reading as :func:`header_fields`, for two names; a name with no
    field gives an empty sequence.
    """
    if type(headers) is dict and len(headers) <= 2:
        # The shortcut of header_fields without its dict and lists, for the
        # usual carrier: the first field alone or both, named as given.  With
        # no key left over, none can repeat a name in another case.
        try:
            first_value = headers.get(first)
            if type(first_value) is str:
                if len(headers) == 1:
                    return (first_value,), ()
                second_value = headers.get(second)
                if type(second_value) is str:
                    return (first_value,), (second_value,)
        except Exception:
            pass  # a key that fails to compare: header_fields logs it and answers
    fields = header_fields(headers, (first, second))
    return fields.get(first, ()), fields.get(second, ())


def _pairs(items: Iterable[object]) -> Iterator[tuple[object, object]]:
    for pair in items:
        if isinstance(pair, (tuple, list)) and len(pair) == 2:
            yield pair[0], pair[1]


def _strings(value: object) -> list[str]:
    if type(value) is str:
        return [value]
    if isinstance(value, (str, bytes)):
        text = _string(value)
        return [] if text is None else [text]
    if isinstance(value, (list, tuple)):
        texts = (_string(item) for item in value if isinstance(item, (str, bytes)))
        return [text for text in texts if text is not None]
    return []


def _string(value: str | bytes) -> str | None:
    if type(value) is str:
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            _log.debug("ignored a header of %d bytes that are not ASCII", len(value))
            return None
    return str(value)
