"""A program with no instrumentation code, run under ``opentelemetry-instrument`` by the tests.

It sets a session and hands work to a library's own pool and threads; it
prints, as JSON, the sessions that work saw and whether tracectrl's zero-code
patch is on.  tracectrl is imported for the session only.
"""

from __future__ import annotations

import json

from _standin_library import Crawler
from tracectrl import current_session_id, session_scope
from tracectrl.integrations.threading import is_instrumented


def main() -> None:
    seen: list[str | None] = []
    crawler = Crawler(workers=2)
    try:
        with session_scope("auto-instrumented"):
            crawler.process(list(range(6)), lambda _: seen.append(current_session_id()))
    finally:
        crawler.close()
    print(json.dumps({"instrumented": is_instrumented(), "seen": sorted(set(map(str, seen)))}))


if __name__ == "__main__":
    main()
