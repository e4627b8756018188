"""OpenTelemetry: ``session.id`` on every span, and the session carried by its propagators.

The trace needs nothing from this module: with ``opentelemetry-api``
installed, :mod:`tracectrl.context` reads and writes OpenTelemetry's current
span itself.  What OpenTelemetry cannot know about is the session; two pieces
give it:

* :class:`SessionSpanProcessor`, added to the SDK's ``TracerProvider``, sets
  the ``session.id`` attribute on every span as it starts.
* :class:`SessionPropagator`, registered as the ``tracectrl_session``
  propagator, so that with
  ``OTEL_PROPAGATORS=tracecontext,baggage,tracectrl_session`` every HTTP client
  and server instrumented by OpenTelemetry carries the session too: inside a
  handler of an instrumented server, :func:`tracectrl.current_session_id`
  returns the caller's session with no tracectrl call in the request path
  (:func:`~tracectrl.current_session_id` finds it in OpenTelemetry's context,
  where it also finds a session OpenInference's ``using_session`` set).

Needs ``pip install "tracectrl[otel]"`` (the OpenTelemetry API and SDK; with the
API alone, :class:`SessionPropagator` works and :class:`SessionSpanProcessor`
raises :class:`ImportError` naming the extra).
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

from tracectrl._baggage import merge_baggage
from tracectrl._headers import header_values
from tracectrl._otel_session import carry, session_in
from tracectrl._wire import (
    BAGGAGE,
    BAGGAGE_SESSION_KEY,
    SESSION_FIELD,
    SESSION_HEADER,
    encode_session_id,
    incoming_session_id,
)

__all__ = ["SESSION_ID_ATTRIBUTE", "SessionPropagator", "SessionSpanProcessor"]

#: The span attribute that holds the session id (OpenTelemetry's semantic convention).
SESSION_ID_ATTRIBUTE = "session.id"


_log = logging.getLogger("tracectrl.integrations.otel")


class SessionSpanProcessor(SpanProcessor):
    """Set ``session.id`` on every span when it starts, from the session in force.

    The session is the one :func:`tracectrl.current_session_id` returns where
    the span starts, or the one :class:`SessionPropagator` extracted (or
    OpenInference's ``using_session`` set) in the span's parent context.
    With no session the span gets no attribute; a ``session.id`` passed to
    ``start_span`` itself is kept.  Add it next to the
    exporting processor: ``provider.add_span_processor(SessionSpanProcessor())``.
    """

    def on_start(self, span: Span, parent_context: Optional[Context] = None) -> None:
        """Stamp ``session.id`` on ``span`` unless there is no session or it already has one."""
        session_id = session_in(parent_context)
        if session_id is None:
            return
        attributes = span.attributes
        if attributes is None or SESSION_ID_ATTRIBUTE not in attributes:
            span.set_attribute(SESSION_ID_ATTRIBUTE, session_id)


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
    does; it never raises.  The session it finds is in force wherever the
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
        if session_id is None:
            return context
        return carry(session_id, context)

    def inject(
        self,
        carrier: CarrierT,
        context: Optional[Context] = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        """Write the session in force (in ``context``, default: here) into ``carrier``."""
        session_id = session_in(context)
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
