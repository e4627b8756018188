"""Every log line carries the session id of the conversation that logged it.

Logging is configured once, with ``dictConfig`` and tracectrl's
``SessionLogFilter``; then conversations run at once, in asyncio tasks and in a
thread pool, each logging as it goes.  The script prints the log and asserts
that:

* every line has a ``session_id``, and it is the session of the conversation
  named in the message, whichever task or thread logged it;
* lines logged outside any conversation say ``None``;
* lines logged while a caller's trace is in force carry its ``trace_id``.

Run it with ``python examples/logging_session.py``; it exits non-zero on the
first failed check.
"""

from __future__ import annotations

import asyncio
import io
import logging
import logging.config
import sys

from tracectrl import current_session_id, session_scope
from tracectrl.context import continue_session
from tracectrl.executors import ContextThreadPoolExecutor, run_in_executor

CONVERSATIONS = 8
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"

captured = io.StringIO()
logging.config.dictConfig(
    {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"session": {"()": "tracectrl.integrations.logging.SessionLogFilter"}},
        "formatters": {
            "plain": {"format": "%(session_id)s %(trace_id)s %(threadName)s %(message)s"}
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "filters": ["session"],
                "formatter": "plain",
            },
            "captured": {
                "class": "logging.StreamHandler",
                "stream": captured,
                "filters": ["session"],
                "formatter": "plain",
            },
        },
        "loggers": {"agent": {"handlers": ["console", "captured"], "level": "INFO"}},
    }
)
log = logging.getLogger("agent")


def tool(conversation: int) -> None:
    log.info("conversation-%d tool runs in a pool thread", conversation)


async def conversation(number: int, pool: ContextThreadPoolExecutor) -> None:
    async with session_scope(f"conversation-{number}"):
        log.info("conversation-%d starts", number)
        await asyncio.sleep(0)
        await run_in_executor(pool, tool, number)
        log.info("conversation-%d ends", number)


async def main_async() -> None:
    with ContextThreadPoolExecutor(max_workers=3) as pool:
        await asyncio.gather(*(conversation(n, pool) for n in range(CONVERSATIONS)))


def main() -> int:
    log.info("service starting")
    asyncio.run(main_async())
    incoming = {
        "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01",
        "X-TraceCtrl-Session": "conversation-remote",
    }
    with continue_session(incoming):
        log.info("conversation-remote handled for a caller")
    log.info("service stopping")
    assert current_session_id() is None

    lines = [line.split(" ", 3) for line in captured.getvalue().splitlines()]
    assert len(lines) == 3 * CONVERSATIONS + 3, len(lines)
    traces: dict[str, set[str]] = {}
    for session_id, trace_id, _thread, message in lines:
        named = message.split(" ", 1)[0]
        if named.startswith("conversation-"):
            assert session_id == named, (session_id, message)
            traces.setdefault(named, set()).add(trace_id)
        else:  # outside any unit of work: neither a session nor a trace
            assert (session_id, trace_id) == ("None", "None"), (session_id, message)
    # Each conversation is one unit of work: one trace id on all its lines, the
    # pool thread's included; the remote one continues the caller's trace.
    assert traces.pop("conversation-remote") == {TRACE_ID}
    assert all(len(ids) == 1 and "None" not in ids for ids in traces.values()), traces
    assert len(set.union(*traces.values())) == CONVERSATIONS
    print(f"logging_session: ok ({len(lines)} lines, each with its own session)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
