"""Keep a session id and a W3C trace with every piece of work in a multi-agent system.

The whole public API is importable from here; :mod:`tracectrl.session` and
:mod:`tracectrl.context` are also public, under the names the TraceCtrl SDK uses.
"""

from tracectrl.context import (
    BAGGAGE_SESSION_KEY,
    SESSION_HEADER,
    SESSION_KEY_ENV_VAR,
    SIGNATURE_HEADER,
    SessionKeys,
    TraceContext,
    TrustPolicy,
    continue_session,
    current_trace,
    extract_trace_headers,
    inject_trace_headers,
    propagation_headers,
)
from tracectrl.executors import (
    ContextThreadPoolExecutor,
    bind,
    run_in_executor,
    start_thread,
    submit,
)
from tracectrl.scope import SessionIdFactory, session_scope, with_session
from tracectrl.session import (
    MAX_SESSION_ID_LENGTH,
    SESSION_ID_ENV_VAR,
    current_session_id,
    new_session,
    set_session_id,
    validate_session_id,
)

__version__ = "0.1.0"

__all__ = [
    "BAGGAGE_SESSION_KEY",
    "MAX_SESSION_ID_LENGTH",
    "SESSION_HEADER",
    "SESSION_ID_ENV_VAR",
    "SESSION_KEY_ENV_VAR",
    "SIGNATURE_HEADER",
    "ContextThreadPoolExecutor",
    "SessionIdFactory",
    "SessionKeys",
    "TraceContext",
    "TrustPolicy",
    "__version__",
    "bind",
    "continue_session",
    "current_session_id",
    "current_trace",
    "extract_trace_headers",
    "inject_trace_headers",
    "new_session",
    "propagation_headers",
    "run_in_executor",
    "session_scope",
    "set_session_id",
    "start_thread",
    "submit",
    "validate_session_id",
    "with_session",
]
