"""Remember recently accepted webhook and message ids, so a replayed command is never answered twice.

Bounded twice over: entries expire after ``ttl`` seconds, and past ``capacity`` the oldest
go first. Stream retries within seconds, so a few minutes of memory is plenty.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable, Iterable


class RecentKeys:
    def __init__(self, capacity: int = 100_000, ttl: float = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.ttl = ttl
        self.clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()  # oldest first

    def seen(self, keys: Iterable[str]) -> bool:
        """True if any of ``keys`` was remembered within the TTL."""
        self._expire()
        return any(key in self._expiry for key in keys)

    def remember(self, keys: Iterable[str]) -> None:
        expires = self.clock() + self.ttl
        for key in keys:
            self._expiry[key] = expires
            self._expiry.move_to_end(key)
        while len(self._expiry) > self.capacity:
            self._expiry.popitem(last=False)

    def __len__(self) -> int:
        return len(self._expiry)

    def _expire(self) -> None:
        now = self.clock()
        while self._expiry:
            key, expires = next(iter(self._expiry.items()))
            if expires > now:
                break
            del self._expiry[key]
