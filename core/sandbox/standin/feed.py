"""The live feed: every change the stand-in makes, for a chat page to follow as it happens."""

from __future__ import annotations

import asyncio
import threading

from slashbots.sandbox.standin.values import Json, copy_json


class LiveFeed:
    """The log of published events, and queues that receive each new one. Subscribers live on
    the server's event loop: subscribe, unsubscribe and publish are called there."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self.published: list[Json] = []  # every state change, kept; appended to under `lock`
        self._subscribers: set[asyncio.Queue[Json]] = set()

    def subscribe(self) -> asyncio.Queue[Json]:
        queue: asyncio.Queue[Json] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Json]) -> None:
        self._subscribers.discard(queue)

    def publish(self, event: Json) -> None:
        with self._lock:
            self.published.append(event)
        for queue in list(self._subscribers):
            queue.put_nowait(copy_json(event))  # a copy: the page's code runs outside the lock
