"""Optional integrations: one module per library, each importable only when its library is.

* :mod:`tracectrl.integrations.otel`: ``session.id`` on every OpenTelemetry
  span, and a propagator for OpenTelemetry's instrumentations
  (``pip install ".[otel]"`` from a tracectrl checkout).
* :mod:`tracectrl.integrations.logging`: ``session_id`` and ``trace_id`` on
  every log record (standard library only).
* :mod:`tracectrl.integrations.structlog`: the same for structlog
  (``pip install ".[structlog]"`` from a tracectrl checkout).
* :mod:`tracectrl.integrations.asgi`: middleware for any ASGI application,
  Starlette and FastAPI included (no dependency).
* :mod:`tracectrl.integrations.wsgi`: middleware for any WSGI application,
  Flask and Django included (no dependency).
* :mod:`tracectrl.integrations.requests`: a ``requests.Session`` that sends
  the trace and session (``pip install ".[requests]"`` from a tracectrl checkout).
* :mod:`tracectrl.integrations.httpx`: ``httpx`` request hooks, sync and async
  (``pip install ".[httpx]"`` from a tracectrl checkout).
* :mod:`tracectrl.integrations.celery`: every task runs under its publisher's
  session and trace (``pip install ".[celery]"`` from a tracectrl checkout).
* :mod:`tracectrl.integrations.dask`: ``submit`` to a Dask distributed cluster
  under the caller's session and trace (``pip install ".[dask]"`` from a tracectrl checkout).
* :mod:`tracectrl.integrations.ray`: Ray tasks and actor methods under the
  caller's session and trace (``pip install ".[ray]"`` from a tracectrl checkout).

Importing a module whose library is missing raises :class:`ImportError` naming
the extra to install.  ``import tracectrl`` imports none of them.
"""
