"""Write ``docs/python-stdlib.inv``: the standard-library names the docs link to.

The API reference links standard-library types (``Executor``, ``ContextVar``,
``Mapping``...) to docs.python.org.  The build must not need the network, so
instead of downloading Python's whole inventory we commit this small one,
made from the list below.  Add a name here when a docstring or signature
starts using it, then run::

    python docs/scripts/stdlib_inventory.py
"""

from __future__ import annotations

import zlib
from pathlib import Path

BASE = "https://docs.python.org/3/"
OUTPUT = Path(__file__).resolve().parents[1] / "python-stdlib.inv"

# (name, Sphinx role, page under library/); the anchor is the name itself.
NAMES: list[tuple[str, str, str]] = [
    ("asyncio.Future", "class", "asyncio-future"),
    ("collections.abc.AsyncGenerator", "class", "collections.abc"),
    ("collections.abc.Awaitable", "class", "collections.abc"),
    ("collections.abc.Generator", "class", "collections.abc"),
    ("collections.abc.Iterable", "class", "collections.abc"),
    ("collections.abc.Iterator", "class", "collections.abc"),
    ("collections.abc.Mapping", "class", "collections.abc"),
    ("collections.abc.MutableMapping", "class", "collections.abc"),
    ("concurrent.futures.Executor", "class", "concurrent.futures"),
    ("concurrent.futures.Future", "class", "concurrent.futures"),
    ("concurrent.futures.ProcessPoolExecutor", "class", "concurrent.futures"),
    ("concurrent.futures.ThreadPoolExecutor", "class", "concurrent.futures"),
    ("contextvars.Context", "class", "contextvars"),
    ("contextvars.ContextVar", "class", "contextvars"),
    ("contextvars.Token", "class", "contextvars"),
    ("contextvars.copy_context", "function", "contextvars"),
    ("email.message.Message", "class", "email.compat32-message"),
    ("http.client.HTTPMessage", "class", "http.client"),
    ("logging.Filter", "class", "logging"),
    ("logging.LogRecord", "class", "logging"),
    ("logging.config.dictConfig", "function", "logging.config"),
    ("logging.handlers.QueueListener", "class", "logging.handlers"),
    ("threading.Thread", "class", "threading"),
    ("threading.excepthook", "function", "threading"),
    ("types.TracebackType", "data", "types"),
    ("typing.Any", "data", "typing"),
    ("typing.Callable", "data", "typing"),
    ("typing.NamedTuple", "class", "typing"),
    ("typing.Optional", "data", "typing"),
    ("typing.Protocol", "class", "typing"),
    ("typing.TypeVar", "class", "typing"),
    ("uuid.uuid4", "function", "uuid"),
]
BUILTINS: list[tuple[str, str, str]] = [
    ("ImportError", "exception", "exceptions"),
    ("RuntimeError", "exception", "exceptions"),
    ("RuntimeWarning", "exception", "exceptions"),
    ("TypeError", "exception", "exceptions"),
    ("ValueError", "exception", "exceptions"),
    ("bool", "class", "functions"),
    ("bytes", "class", "stdtypes"),
    ("dict", "class", "stdtypes"),
    ("float", "class", "functions"),
    ("int", "class", "functions"),
    ("list", "class", "stdtypes"),
    ("object", "class", "functions"),
    ("str", "class", "stdtypes"),
    ("tuple", "class", "stdtypes"),
]


def inventory() -> bytes:
    """Return the inventory in Sphinx's version 2 format."""
    header = (
        "# Sphinx inventory version 2\n"
        "# Project: Python\n"
        "# Version: 3\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    lines = [
        f"{name} py:{role} 1 library/{page}.html#{name} -\n"
        for name, role, page in sorted(NAMES + BUILTINS)
    ]
    return header.encode() + zlib.compress("".join(lines).encode())


if __name__ == "__main__":
    OUTPUT.write_bytes(inventory())
    print(f"wrote {OUTPUT} ({len(NAMES) + len(BUILTINS)} names)")
