"""Run ``phoenix serve`` with every port it opens on 127.0.0.1 only.

Run with the Phoenix venv's interpreter: ``python serve_on_loopback.py``, with
``PHOENIX_HOST=127.0.0.1``, ``PHOENIX_PORT`` and ``PHOENIX_GRPC_PORT`` set.
Phoenix binds its HTTP server to ``PHOENIX_HOST``, but its OTLP/gRPC receiver
to ``[::]`` (every interface) whatever the host says; this launcher rewrites
that address to 127.0.0.1 before the server starts.  Nothing else changes.
"""

from __future__ import annotations

import sys
from typing import Any

import grpc.aio
from phoenix.server.main import main

_make_server = grpc.aio.server


def _loopback_server(*args: Any, **kwargs: Any) -> Any:
    server = _make_server(*args, **kwargs)
    for name in ("add_insecure_port", "add_secure_port"):
        add_port = getattr(server, name)

        def on_loopback(address: str, *rest: Any, _add_port: Any = add_port) -> Any:
            host, _, port = address.rpartition(":")
            if host not in ("127.0.0.1", "localhost"):
                address = f"127.0.0.1:{port}"
            return _add_port(address, *rest)

        setattr(server, name, on_loopback)
    return server


grpc.aio.server = _loopback_server

if __name__ == "__main__":
    sys.argv = ["phoenix", "serve"]
    sys.exit(main())
