"""Finding OpenTelemetry's server middleware inside tracectrl's, to take its place inside it.

OpenTelemetry's server instrumentations start their span as SERVER only when
no span is in force yet; they find the caller's trace themselves, from the
request's headers.  tracectrl's middleware, wrapped around them, puts the
caller's trace in force first, and the server span would start as INTERNAL.
So a tracectrl middleware that finds one of them below it at start-up does its
work inside it instead: the order the docs recommend, whichever order the
application was assembled in.  Nothing here imports OpenTelemetry.
"""

from __future__ import annotations

import copy
from typing import Any, Protocol


class _Middleware(Protocol):
    app: Any


#: How far down a chain of middleware objects to look; application stacks are shallow.
_MAX_DEPTH = 32


def opentelemetry_middleware_below(app: object, module: str, attribute: str) -> Any:
    """Return OpenTelemetry's server middleware in the chain below ``app``, if there is one.

    The chain is followed through each object's ``app`` attribute (Starlette's
    and most middleware's name for the application they wrap).  A match is an
    instance of a class named ``OpenTelemetryMiddleware`` defined in
    ``module``, or of a subclass of one; ``attribute`` names where it keeps
    the application it wraps, checked so that a class of that name with another
    layout is never changed.
    """
    for _ in range(_MAX_DEPTH):
        if app is None:
            return None
        if _is_opentelemetry_middleware(type(app), module) and hasattr(app, attribute):
            return app
        app = getattr(app, "app", None)
    return None


def _is_opentelemetry_middleware(kind: type, module: str) -> bool:
    return any(
        base.__name__ == "OpenTelemetryMiddleware" and base.__module__ == module
        for base in kind.__mro__
    )


def move_inside_opentelemetry(middleware: _Middleware, module: str, attribute: str) -> bool:
    """Put a copy of ``middleware`` inside OpenTelemetry's server middleware below it, if any.

    The copy has the same options and wraps what OpenTelemetry's wrapped;
    ``middleware`` itself should then only pass requests on.  ``module`` is
    where OpenTelemetry's middleware class is defined, ``attribute`` where it
    keeps the application it wraps.  Returns whether it was moved.
    """
    below = opentelemetry_middleware_below(middleware.app, module, attribute)
    if below is None:
        return False
    inner = copy.copy(middleware)
    inner.app = getattr(below, attribute)
    setattr(below, attribute, inner)
    return True
