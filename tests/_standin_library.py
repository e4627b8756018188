"""A stand-in for a third-party SDK that runs its callbacks in its own pool and its own threads.

It knows nothing of tracectrl: like an agent framework or an HTTP client with
a background pool, it creates a ``ThreadPoolExecutor`` and ``threading.Thread``
objects (a plain one, a ``Timer`` and a subclass that overrides ``run``) inside
its own code, where a user cannot add a ``tracectrl.submit`` call.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

Callback = Callable[[int], None]


class Crawler:
    """Processes items on a shared internal pool and on threads it starts itself."""

    def __init__(self, workers: int = 8) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="standin")

    def process(self, items: list[int], callback: Callback) -> None:
        """Run ``callback(item)`` for every item, in the library's own threads; return when done."""
        pooled, threaded = items[: len(items) // 2], items[len(items) // 2 :]
        list(self._pool.map(callback, pooled))
        threads: list[threading.Thread] = []
        for position, item in enumerate(threaded):
            kind = position % 3
            if kind == 0:
                threads.append(threading.Thread(target=callback, args=(item,)))
            elif kind == 1:
                threads.append(threading.Timer(0, callback, args=(item,)))
            else:
                threads.append(_CallbackThread(callback, item))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def close(self) -> None:
        """Shut the internal pool down."""
        self._pool.shutdown()


class _CallbackThread(threading.Thread):
    """A thread subclass that overrides ``run``, as many libraries write them."""

    def __init__(self, callback: Callback, item: int) -> None:
        super().__init__(daemon=True)
        self._callback = callback
        self._item = item

    def run(self) -> None:
        self._callback(self._item)
