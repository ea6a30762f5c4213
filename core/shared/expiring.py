"""A bounded mapping whose entries expire: what one process remembers in place of Redis's keys with a TTL."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable, Generic, TypeVar

V = TypeVar("V")


class Expiring(Generic[V]):
    """Each entry lives for the seconds it was set with; past ``capacity`` the least recently set go first.

    Forgetting early is always safe for what is kept here (a thread found again by reading
    Stream, one more refusal said aloud), so the bound wins over the TTL.
    """

    def __init__(self, capacity: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def get(self, key: str) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            del self._entries[key]
            return None
        return entry[1]

    def set(self, key: str, value: V, ttl: float) -> None:
        self._entries[key] = (self.clock() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
