"""Per-user, per-channel and per-bot command limits, checked in the webhook's ack.

GCRA (the generic cell rate algorithm): each key keeps one number, the time its budget is
next fully spent, so memory is one float per active key and ``5/minute`` allows a burst of
five and then one every twelve seconds, with no window edges to game.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable, Sequence

UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
RATE = re.compile(r"\s*(\d+)\s*/\s*(second|minute|hour|day)s?\s*")


@dataclass(frozen=True)
class Rate:
    count: int
    period: float
    text: str

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``"5/minute"`` -> Rate(5, 60.0); raises ValueError naming the expected form."""
        match = RATE.fullmatch(text) if isinstance(text, str) else None
        if not match or int(match.group(1)) < 1:
            raise ValueError(f"expected a rate such as '5/minute' (per second, minute, hour or day), got {text!r}")
        return cls(int(match.group(1)), UNITS[match.group(2)], f"{int(match.group(1))} per {match.group(2)}")


class RateLimiter:
    """Remembers, per key, when its budget is next whole again."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self.clock = clock
        self.max_keys = max_keys
        self._next_free: dict[str, float] = {}

    def acquire(self, limits: Sequence[tuple[str, Rate]]) -> float:
        """Take one from every ``(key, rate)`` budget, or none if any is spent.

        Returns 0 when accepted, else the seconds until the command would be accepted.
        """
        now = self.clock()
        updates = []
        wait = 0.0
        for key, rate in limits:
            interval = rate.period / rate.count
            burst = rate.period - interval
            free_at = max(self._next_free.get(key, now), now)
            if free_at - now > burst:
                wait = max(wait, free_at - now - burst)
            updates.append((key, free_at + interval))
        if wait:
            return wait
        for key, free_at in updates:
            self._next_free[key] = free_at
        if len(self._next_free) > self.max_keys:
            self._forget_idle(now)
        return 0.0

    def _forget_idle(self, now: float) -> None:
        # A key whose budget is whole again holds no information: dropping it changes nothing.
        self._next_free = {key: free_at for key, free_at in self._next_free.items() if free_at > now}
