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
  returns the caller's session with no tracectrl call in the request path
  (:func:`~tracectrl.current_session_id` finds it in OpenTelemetry's context,
  where it also finds a session OpenInference's ``using_session`` set).

Needs ``pip install ".[otel]"`` from a tracectrl checkout (the OpenTelemetry
API and SDK; with the API alone, :class:`SessionPropagator` works and
:class:`SessionSpanProcessor` raises :class:`ImportError` naming the extra).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Optional

try:
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
    from opentelemetry.trace import SpanContext, get_current_span
except ImportError as error:
    raise ImportError(
        "tracectrl.integrations.otel needs the OpenTelemetry API and SDK: "
        'pip install ".[otel]" from the root of a tracectrl checkout'
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
                    'pip install ".[otel]" from the root of a tracectrl checkout'
                )

        Span = object

from tracectrl._baggage import merge_baggage
from tracectrl._headers import header_values
from tracectrl._otel_session import carry, session_in, session_to_send
from tracectrl._trace import register_session_attributes, started_trace
from tracectrl._tracecontext import trace_from_fields
from tracectrl._trust import admission, session_signature
from tracectrl._wire import (
    BAGGAGE,
    BAGGAGE_SESSION_KEY,
    SESSION_FIELD,
    SESSION_HEADER,
    SIGNATURE_FIELD,
    SIGNATURE_HEADER,
    TRACEPARENT,
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

SESSION_ID_ATTRIBUTE = "session.id"
"""The span attribute that holds the session id (OpenTelemetry's semantic convention)."""
CONVERSATION_ID_ATTRIBUTE = "gen_ai.conversation.id"
"""The GenAI semantic convention's attribute for a conversation."""
DEFAULT_SESSION_ATTRIBUTES = (SESSION_ID_ATTRIBUTE, CONVERSATION_ID_ATTRIBUTE)
"""The attributes :class:`SessionSpanProcessor` stamps by default."""


_log = logging.getLogger("tracectrl.integrations.otel")


class SessionSpanProcessor(SpanProcessor):
    """Stamp the session on every span when it starts, and keep a unit's spans in its trace.

    The session is the one :func:`tracectrl.current_session_id` returns where
    the span starts, or the one :class:`SessionPropagator` extracted (or
    OpenInference's ``using_session`` set) in the span's parent context.  It is
    set under each name in ``attributes`` (default: ``session.id`` and
    ``gen_ai.conversation.id``; a tuple given replaces them).  With no session
    the span gets no attribute; a value passed to ``start_span`` itself is kept.

    A span that starts with no parent inside a unit of work whose trace
    tracectrl started (no span and no ``traceparent`` was in force) gets that
    trace's id, so that logs, outgoing ``traceparent`` and spans of the unit
    show one trace id; it stays a root: no parent that nobody exports.  (A
    span the sampler drops never reaches a processor; while it is current,
    tracectrl shows it with the unit's trace id all the same.)  Add it
    next to the exporting processor:
    ``provider.add_span_processor(SessionSpanProcessor())``.

    Args:
        attributes: the span attribute names to stamp with the session id;
            ``session.id`` and ``gen_ai.conversation.id`` by default.

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
        session_id = session_in(parent_context)
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

    With ``$TRACECTRL_SESSION_KEY`` set, ``inject`` also writes
    ``X-TraceCtrl-Session-Signature`` for the current span's trace, and
    ``extract`` adopts only sessions signed for the carrier's ``traceparent``,
    as :class:`tracectrl.context.continue_session` does.
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
            fields = _session_fields(carrier, getter)
            session_id = incoming_session_id(fields)
        except Exception:  # a getter or carrier that fails must not fail the request
            _log.debug("ignored a carrier whose session could not be read", exc_info=True)
            return context
        if session_id is not None:
            policy = admission(carrier, None, None, continue_trace=True)  # $TRACECTRL_SESSION_KEY
            if policy is not None:
                remote = trace_from_fields(fields.get(TRACEPARENT), None)
                session_id = policy.admit(fields, session_id, remote)[0]
        # A marker for every request, with a session or without: the session that
        # tracectrl had in force when the request began (one a sync handler of an
        # earlier request on this thread left with set_session_id, say) is
        # shadowed for this request, so no session outlives its request.
        return carry(session_id, context)

    def inject(
        self,
        carrier: CarrierT,
        context: Optional[Context] = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        """Write the session of ``context`` (default: the one in force here) into ``carrier``.

        A context of the work running here (the current one, or one made from
        it) sends the session in force here.  A context from elsewhere (one
        captured in another request, an empty one) sends only the session it
        carries itself (extracted, or OpenInference's), or none.  A session
        tracectrl code set lives in tracectrl's own variable, not in any
        OpenTelemetry context, so a context that carries neither kind counts
        as one of the work running here.
        """
        session_id = session_to_send(context)
        if session_id is None:
            return
        encoded = encode_session_id(session_id)
        if encoded is None:
            return
        setter.set(carrier, SESSION_HEADER, encoded)
        span_context = get_current_span(context).get_span_context()
        if span_context.is_valid:
            signature = session_signature(session_id, f"{span_context.trace_id:032x}", None)
            if signature is not None:
                setter.set(carrier, SIGNATURE_HEADER, signature)
        if isinstance(carrier, Mapping):
            existing = header_values(carrier, BAGGAGE)
            setter.set(carrier, BAGGAGE, merge_baggage(existing, BAGGAGE_SESSION_KEY, encoded))

    @property
    def fields(self) -> set[str]:
        """The header fields ``inject`` sets: the session, its signature, and ``baggage``."""
        return {SESSION_HEADER, SIGNATURE_HEADER, BAGGAGE}


_AS_INJECTED = {SESSION_FIELD: SESSION_HEADER, SIGNATURE_FIELD: SIGNATURE_HEADER}


def _session_fields(carrier: CarrierT, getter: Getter[CarrierT]) -> dict[str, list[str]]:
    """Read the session, ``baggage``, signature and ``traceparent`` fields through ``getter``."""
    # The getters of HTTP servers match names in any case, the default one (a
    # plain dict) does not: with it, also try the spelling that inject writes.
    exact_case = isinstance(getter, DefaultGetter)
    fields: dict[str, list[str]] = {}
    for name in (SESSION_FIELD, BAGGAGE, SIGNATURE_FIELD, TRACEPARENT):
        values: Optional[Iterable[object]] = getter.get(carrier, name)
        if values is None and exact_case and name in _AS_INJECTED:
            values = getter.get(carrier, _AS_INJECTED[name])
        if values:
            strings = [value for value in values if isinstance(value, str)]
            if strings:
                fields[name] = strings
    return fields
