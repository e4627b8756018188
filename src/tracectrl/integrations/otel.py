"""OpenTelemetry: ``session.id`` on every span, and the session carried by its propagators.

The trace needs nothing from this module: with ``opentelemetry-api``
installed, :mod:`tracectrl.context` reads and writes OpenTelemetry's current
span itself.  What OpenTelemetry cannot know about is the session; two pieces
give it:

* :class:`SessionSpanProcessor`, added to the SDK's ``TracerProvider``, sets
  ``session.id`` and ``gen_ai.conversation.id`` on every span as it starts,
  and starts a span with no parent in the trace of the unit of work in force.
* :class:`SessionPropagator`, registered as the ``tracectrl_session``
  propagator, so that with
  ``OTEL_PROPAGATORS=tracecontext,baggage,tracectrl_session`` every HTTP client
  and server instrumented by OpenTelemetry carries the session too: inside a
  handler of an instrumented server, :func:`tracectrl.current_session_id`
  returns the caller's session with no tracectrl call in the request path.

Needs ``pip install "tracectrl[otel]"`` (the OpenTelemetry API and SDK; with the
API alone, :class:`SessionPropagator` works and :class:`SessionSpanProcessor`
raises :class:`ImportError` naming the extra).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, NamedTuple, Optional

try:
    from opentelemetry import context as otel_context
    from opentelemetry.context import Context, get_current
    from opentelemetry.propagators.textmap import (
        CarrierT,
        DefaultGetter,
        Getter,
        Setter,
        TextMapPropagator,
        default_getter,
        default_setter,
    )
    from opentelemetry.trace import SpanContext
except ImportError as error:
    raise ImportError(
        "tracectrl.integrations.otel needs the OpenTelemetry API and SDK: "
        'pip install "tracectrl[otel]"'
    ) from error

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import Span, SpanProcessor
else:
    try:
        from opentelemetry.sdk.trace import Span, SpanProcessor
    except ImportError:
        # The API alone: SessionPropagator, which OTEL_PROPAGATORS loads through
        # the entry point, must still import; only the span processor needs the SDK.
        class SpanProcessor:
            def __init__(self) -> None:
                raise ImportError(
                    "SessionSpanProcessor needs the OpenTelemetry SDK: "
                    'pip install "tracectrl[otel]"'
                )

        Span = object

from tracectrl import _sessionvar
from tracectrl._baggage import merge_baggage
from tracectrl._headers import header_values
from tracectrl._sessionvar import session_var
from tracectrl._trace import register_session_attributes, started_trace
from tracectrl._wire import (
    BAGGAGE,
    BAGGAGE_SESSION_KEY,
    SESSION_FIELD,
    SESSION_HEADER,
    encode_session_id,
    incoming_session_id,
)

__all__ = [
    "CONVERSATION_ID_ATTRIBUTE",
    "DEFAULT_SESSION_ATTRIBUTES",
    "SESSION_ID_ATTRIBUTE",
    "SessionPropagator",
    "SessionSpanProcessor",
]

#: The span attribute that holds the session id (OpenTelemetry's semantic convention).
SESSION_ID_ATTRIBUTE = "session.id"
#: The GenAI semantic convention's attribute for a conversation.
CONVERSATION_ID_ATTRIBUTE = "gen_ai.conversation.id"
#: The attributes :class:`SessionSpanProcessor` stamps by default.
DEFAULT_SESSION_ATTRIBUTES = (SESSION_ID_ATTRIBUTE, CONVERSATION_ID_ATTRIBUTE)


_log = logging.getLogger("tracectrl.integrations.otel")


class SessionSpanProcessor(SpanProcessor):
    """Stamp the session on every span when it starts, and keep a unit's spans in its trace.

    The session is the one :func:`tracectrl.current_session_id` returns where
    the span starts, or the one :class:`SessionPropagator` extracted into the
    span's parent context.  It is set under each name in ``attributes``
    (default: ``session.id`` and ``gen_ai.conversation.id``; a tuple given
    replaces them).  With no session the span gets no attribute; a value
    passed to ``start_span`` itself is kept.

    A span that starts with no parent inside a unit of work whose trace
    tracectrl started (no span and no ``traceparent`` was in force) gets that
    trace's id, so that logs, outgoing ``traceparent`` and spans of the unit
    show one trace id; it stays a root: no parent that nobody exports.  Add it
    next to the exporting processor:
    ``provider.add_span_processor(SessionSpanProcessor())``.

    Raises:
        TypeError: ``attributes`` is a ``str`` or holds a non-``str``.
        ValueError: ``attributes`` holds an empty name.
    """

    def __init__(self, attributes: Iterable[str] = DEFAULT_SESSION_ATTRIBUTES) -> None:
        super().__init__()
        if isinstance(attributes, str):
            raise TypeError("attributes must be a sequence of names, not one str")
        names = tuple(attributes)
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"attribute names must be str, got {type(name).__name__}")
            if not name:
                raise ValueError("attribute names must not be empty")
        self._attributes = names
        register_session_attributes(names)

    def on_start(self, span: Span, parent_context: Optional[Context] = None) -> None:
        """Stamp the session's attributes on ``span``; give a unit's root span the unit's trace."""
        if span.parent is None:
            _join_unit_trace(span)
        session_id = _session_in(parent_context)
        if session_id is None:
            return
        attributes = span.attributes
        for name in self._attributes:
            if attributes is None or name not in attributes:
                span.set_attribute(name, session_id)


def _join_unit_trace(span: Span) -> None:
    """Give a root span the trace id of the unit of work tracectrl started, if one is in force."""
    trace = started_trace()
    if trace is None:
        return
    try:
        current = span.get_span_context()
        span._context = SpanContext(
            int(trace.trace_id, 16),
            current.span_id,
            False,
            current.trace_flags,
            current.trace_state,
        )
    except Exception:  # an SDK that keeps its context elsewhere: the span keeps its own trace
        _log.debug("could not start a span in the unit's trace", exc_info=True)


class SessionPropagator(TextMapPropagator):
    """Carry the session id in ``X-TraceCtrl-Session`` and W3C ``baggage`` (``session.id``).

    The OpenTelemetry counterpart of :func:`tracectrl.context.propagation_headers`
    and :class:`tracectrl.context.continue_session`, for code instrumented by
    OpenTelemetry rather than by tracectrl.  It handles the session only; list
    it after ``tracecontext`` and ``baggage``
    (``OTEL_PROPAGATORS=tracecontext,baggage,tracectrl_session``), or compose
    it with ``CompositePropagator``.

    ``extract`` reads the header (else the baggage member), ignoring invalid,
    oversized or control-character values exactly as ``continue_session``
    does; it never raises.  It marks every request, with a session or
    without, so that a session left in force before the request began (a
    ``set_session_id`` in an earlier request's sync handler on the same
    thread) is not this request's.  The session it finds is in force wherever the
    returned context is attached: :func:`tracectrl.current_session_id` returns
    it, :class:`SessionSpanProcessor` stamps it, until the instrumentation
    detaches the context, so it never outlives its request.  A session that
    tracectrl code sets later, inside the request (``session_scope``,
    ``set_session_id``), takes precedence while it is in force.

    ``inject`` writes the session in force as ``X-TraceCtrl-Session`` and,
    when the carrier is a mapping, merges ``session.id`` into its ``baggage``
    (so list this propagator after ``baggage``, which replaces that header).
    With no session it writes nothing.
    """

    def extract(
        self,
        carrier: CarrierT,
        context: Optional[Context] = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        """Return ``context`` (default: the current one) with the carrier's session, if valid."""
        if context is None:
            context = get_current()
        try:
            session_id = incoming_session_id(_session_fields(carrier, getter))
        except Exception:  # a getter or carrier that fails must not fail the request
            _log.debug("ignored a carrier whose session could not be read", exc_info=True)
            return context
        # A marker for every request, with a session or without: the session that
        # tracectrl had in force when the request began (one a sync handler of an
        # earlier request on this thread left with set_session_id, say) is
        # shadowed for this request, so no session outlives its request.
        carried = _CarriedSession(session_id, session_var.get())
        return otel_context.set_value(_CARRIED_KEY, carried, context)

    def inject(
        self,
        carrier: CarrierT,
        context: Optional[Context] = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        """Write the session in force (in ``context``, default: here) into ``carrier``."""
        session_id = _session_in(context)
        if session_id is None:
            return
        encoded = encode_session_id(session_id)
        if encoded is None:
            return
        setter.set(carrier, SESSION_HEADER, encoded)
        if isinstance(carrier, Mapping):
            existing = header_values(carrier, BAGGAGE)
            setter.set(carrier, BAGGAGE, merge_baggage(existing, BAGGAGE_SESSION_KEY, encoded))

    @property
    def fields(self) -> set[str]:
        """The header fields ``inject`` sets: ``X-TraceCtrl-Session`` and ``baggage``."""
        return {SESSION_HEADER, BAGGAGE}


class _CarriedSession(NamedTuple):
    """A session extracted by :class:`SessionPropagator`, kept in OpenTelemetry's context."""

    #: The request's session; ``None`` when it came with none.
    session_id: Optional[str]
    #: The session tracectrl had in force when this one was extracted.
    shadowed: Optional[str]


_CARRIED_KEY = otel_context.create_key("tracectrl-session")


def _preferred(local: str | None, carried: object) -> str | None:
    """Choose between tracectrl's own session and one OpenTelemetry's context carries.

    The carried session was extracted for the request being handled, so it
    wins over the session that was in force around it (``shadowed``: one set
    at start-up, or left by an earlier request) and over none, even when the
    request carried none; a session tracectrl code set since then is newer
    still, and wins while it is in force.
    """
    if type(carried) is _CarriedSession and (local is None or local is carried.shadowed):
        return carried.session_id
    return local


def _carried_session(local: str | None) -> str | None:
    """Return the session in force given tracectrl's own: the hook ``current_session_id`` calls."""
    carried = get_current().get(_CARRIED_KEY)
    if carried is None:  # the usual case outside an instrumented request: no second call
        return local
    return _preferred(local, carried)


def _session_in(context: Context | None) -> str | None:
    """Return the session in force for work under ``context`` (``None``: the current context)."""
    carried = None if context is None else context.get(_CARRIED_KEY)
    if carried is None:
        carried = get_current().get(_CARRIED_KEY)
    return _preferred(session_var.get(), carried)


def _session_fields(carrier: CarrierT, getter: Getter[CarrierT]) -> dict[str, list[str]]:
    """Read the session header and ``baggage`` through ``getter``, for ``incoming_session_id``."""
    # The getters of HTTP servers match names in any case, the default one (a
    # plain dict) does not: with it, also try the spelling that inject writes.
    exact_case = isinstance(getter, DefaultGetter)
    fields: dict[str, list[str]] = {}
    for name in (SESSION_FIELD, BAGGAGE):
        values: Optional[Iterable[object]] = getter.get(carrier, name)
        if values is None and exact_case and name is SESSION_FIELD:
            values = getter.get(carrier, SESSION_HEADER)
        if values:
            strings = [value for value in values if isinstance(value, str)]
            if strings:
                fields[name] = strings
    return fields


# current_session_id() consults OpenTelemetry's context only once this module is
# imported: nothing else puts a session there.
_sessionvar.carried_session = _carried_session
