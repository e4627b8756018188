"""Zero code: a library's own pool and threads log the right session; tracectrl only switches it on.

Run it from the repository root, with tracectrl installed::

    python examples/zero_code.py

The "library" below stands for any SDK that hands work to a thread pool and to
threads it starts itself, and logs from there.  The "application" sets its
session the way code written for OpenInference does, with
``using_session(...)``, if OpenInference is installed, and with a plain
``contextvars`` variable of its own otherwise; it never calls tracectrl.  The
tracectrl calls are ``instrument()`` and, in the logging set-up, tracectrl's
filter, which stamps each record with ``session_id``.

The script prints the log and exits with status 1 if any record from the
library's threads shows the wrong session.
"""

from __future__ import annotations

import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager

from tracectrl.integrations.threading import instrument

# --------------------------------------------------------------------------- #
# A third-party library: its own pool, its own threads, its own logger.
# --------------------------------------------------------------------------- #
library_log = logging.getLogger("vendor.sdk")
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="vendor")


def fetch_all(urls: list[str]) -> None:
    """Fetch on the library's pool, then flush on a background thread."""
    list(_pool.map(lambda url: library_log.info("fetched %s", url), urls))
    flusher = threading.Thread(target=lambda: library_log.info("flushed %s", urls[-1]))
    flusher.start()
    flusher.join()


# --------------------------------------------------------------------------- #
# The application.
# --------------------------------------------------------------------------- #
def conversation(session_id: str) -> AbstractContextManager[object]:
    """The application's own way of setting a session: OpenInference's, when installed."""
    try:
        from openinference.instrumentation import using_session
    except ImportError:
        from tracectrl import session_scope  # OpenInference is not installed here

        return session_scope(session_id)
    return using_session(session_id)


class Recorder(logging.Handler):
    """Keeps (session_id, message) of every record, to check them at the end."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((str(getattr(record, "session_id", "-")), record.getMessage()))


def main() -> int:
    from tracectrl.integrations.logging import SessionLogFilter

    instrument()  # the one tracectrl call that matters
    recorder = Recorder()
    recorder.addFilter(SessionLogFilter())
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(SessionLogFilter())
    handler.setFormatter(logging.Formatter("%(threadName)-10s session=%(session_id)s %(message)s"))
    for each in (recorder, handler):
        library_log.addHandler(each)
    library_log.setLevel(logging.INFO)

    workers = [
        threading.Thread(target=run_conversation, args=(session,))
        for session in ("chat-alice", "chat-bob")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    _pool.shutdown()

    wrong = [
        (session, message)
        for session, message in recorder.records
        if session in ("-", "None") or f"/{session.rsplit('-', 1)[-1]}/" not in message
    ]
    print(f"{len(recorder.records)} records, {len(wrong)} with the wrong session")
    return 1 if wrong or len(recorder.records) != 6 else 0


def run_conversation(session_id: str) -> None:
    user = session_id.rsplit("-", 1)[-1]
    with conversation(session_id):
        fetch_all([f"https://example.test/{user}/1", f"https://example.test/{user}/2"])


if __name__ == "__main__":
    sys.exit(main())
