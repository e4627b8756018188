"""A LangGraph graph of plain-function nodes: every node, and every tool it calls, has the session.

Run it from the repository root, with ``pip install ".[test]"`` (it needs ``langgraph``)::

    python examples/langgraph_recipe.py

The graph plans a trip: ``plan`` runs first, ``flights`` and ``hotels`` run in
parallel (LangGraph runs them on its own thread pool, or as asyncio tasks under
``ainvoke``), and ``answer`` joins them.  ``hotels`` fans out to its own thread
pool for three look-ups.  No node has any tracectrl code except that fan-out,
which goes through :class:`tracectrl.ContextThreadPoolExecutor`.

Three conversations run at once: two with ``invoke`` on two threads, one with
``ainvoke``.  Each node and look-up records the session it ran under.  The script
prints what each conversation saw and exits with status 1 if any node or
look-up saw another conversation's session, or none.
"""

from __future__ import annotations

import asyncio
import operator
import sys
import threading
from typing import Annotated, Any, Optional

from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from tracectrl import ContextThreadPoolExecutor, current_session_id, with_session

# A pool shared by all conversations, as a real agent would share one.
LOOKUPS = ContextThreadPoolExecutor(max_workers=3, thread_name_prefix="lookup")


class Trip(TypedDict):
    """The graph's state: each node appends (step, session it saw)."""

    seen: Annotated[list[tuple[str, Optional[str]]], operator.add]


def plan(state: Trip) -> dict[str, Any]:
    return {"seen": [("plan", current_session_id())]}


def flights(state: Trip) -> dict[str, Any]:
    return {"seen": [("flights", current_session_id())]}


def look_up(city: str) -> tuple[str, Optional[str]]:
    return f"hotels in {city}", current_session_id()


def hotels(state: Trip) -> dict[str, Any]:
    # A node's own threads: Python copies no context into them; the pool does.
    found = list(LOOKUPS.map(look_up, ["Oslo", "Bergen", "Tromsø"]))
    return {"seen": [("hotels", current_session_id()), *found]}


def answer(state: Trip) -> dict[str, Any]:
    return {"seen": [("answer", current_session_id())]}


def build_graph() -> Any:
    graph = StateGraph(Trip)
    for node in (plan, flights, hotels, answer):
        graph.add_node(node.__name__, node)
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "flights")
    graph.add_edge("plan", "hotels")
    graph.add_edge("flights", "answer")
    graph.add_edge("hotels", "answer")
    graph.add_edge("answer", END)
    return graph.compile()


GRAPH = build_graph()


@with_session(session_id=lambda user: f"trip-{user}")
def converse(user: str) -> list[tuple[str, Optional[str]]]:
    """One conversation, run with ``invoke``: nodes run on LangGraph's thread pool."""
    seen: list[tuple[str, Optional[str]]] = GRAPH.invoke({"seen": []})["seen"]
    return seen


@with_session(session_id=lambda user: f"trip-{user}")
async def converse_async(user: str) -> list[tuple[str, Optional[str]]]:
    """One conversation, run with ``ainvoke``: nodes run as asyncio tasks."""
    state = await GRAPH.ainvoke({"seen": []})
    seen: list[tuple[str, Optional[str]]] = state["seen"]
    return seen


def main() -> int:
    results: dict[str, list[tuple[str, Optional[str]]]] = {}

    def run(user: str) -> None:
        results[user] = converse(user)

    threads = [threading.Thread(target=run, args=(user,)) for user in ("ann", "bob")]
    for thread in threads:
        thread.start()
    results["cat"] = asyncio.run(converse_async("cat"))
    for thread in threads:
        thread.join()
    LOOKUPS.shutdown()

    wrong = 0
    for user, seen in sorted(results.items()):
        print(f"conversation trip-{user}:")
        for step, session in seen:
            ok = session == f"trip-{user}"
            wrong += not ok
            print(f"  {'ok ' if ok else 'BAD'} {step:<20} session={session}")
    steps = sum(len(seen) for seen in results.values())
    if wrong or steps != 3 * 7 or current_session_id() is not None:
        print(f"FAILED: {wrong} steps saw the wrong session", file=sys.stderr)
        return 1
    print(f"all {steps} steps of 3 conversations saw their own session")
    return 0


if __name__ == "__main__":
    sys.exit(main())
