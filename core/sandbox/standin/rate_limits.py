"""Stream's app rate limits, enforced only when asked (off by default, as tests mostly want).

What Stream documents (docs/debugging_and_cli/rate_limits.md): limits apply per API endpoint
and platform on a 1-minute window, and also per second, "the per-minute limit divided by 30
to allow for bursts"; Send Message and Update Message have 1,000 a minute each; beyond a
limit, 429 with X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset (when the
window resets, unix seconds). Server-side calls are not subject to per-user limits.

ASSUMPTIONS, where the docs say nothing:
- Partial message updates (PUT /messages/{id}, UpdateMessagePartial) are not in Stream's
  table; here they count against Update Message's bucket, shared with full updates.
- Windows are fixed and aligned to the clock (a minute starts at a whole minute, a second at
  a whole second), and a refused call uses up nothing.
- A 429 from the per-second limit reports that window (limit 33, reset at the next second);
  any other answer of a limited endpoint reports the minute window.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable

from slashbots.sandbox.standin.errors import TOO_MANY_REQUESTS, StreamError

PER_MINUTE: dict[str, int] = {"SendMessage": 1000, "UpdateMessage": 1000}
BURST_DIVISOR = 30  # the per-second limit is the per-minute limit divided by this
# The bucket each limited operation counts against (see the assumption above).
BUCKETS: dict[str, str] = {
    "SendMessage": "SendMessage",
    "UpdateMessage": "UpdateMessage",
    "UpdateMessagePartial": "UpdateMessage",
}

Clock = Callable[[], float]  # unix seconds


@dataclass
class _Window:
    seconds: int
    limit: int
    start: int = 0
    used: int = 0

    def roll(self, at: float) -> None:
        start = int(at // self.seconds) * self.seconds
        if start != self.start:
            self.start, self.used = start, 0

    def headers(self) -> dict[str, str]:
        # Names in lower case, as Stream sends them: the SDK's `rate_limit()` looks them up so.
        return {"x-ratelimit-limit": str(self.limit), "x-ratelimit-remaining": str(max(self.limit - self.used, 0)),
                "x-ratelimit-reset": str(self.start + self.seconds)}


class RateLimits:
    """Counts calls per bucket in a minute window and a second window; refuses beyond either."""

    def __init__(self, lock: threading.RLock, *, enabled: bool = False) -> None:
        self._lock = lock
        self.enabled = enabled
        self._per_minute = dict(PER_MINUTE)
        self._clock: Clock = time.time
        self._windows: dict[str, tuple[_Window, _Window]] = {}
        self.rejected: Counter[str] = Counter()  # 429s answered, by operation

    def configure(self, *, enabled: bool, per_minute: Mapping[str, int] | None, clock: Clock | None) -> None:
        """Switch enforcement; `per_minute` overrides limits by bucket name. Windows start afresh."""
        with self._lock:
            self.enabled = enabled
            self._per_minute = {**PER_MINUTE, **(per_minute or {})}
            self._clock = clock or time.time
            self._windows = {}

    def admit(self, operation: str) -> dict[str, str]:
        """Count a call to `operation`: the X-RateLimit-* headers for its answer (none for an
        unlimited one), or Stream's 429 when a window is used up."""
        bucket = BUCKETS.get(operation)
        if not self.enabled or bucket is None:
            return {}
        with self._lock:
            minute, second = self._bucket(bucket)
            at = self._clock()
            minute.roll(at)
            second.roll(at)
            full = minute if minute.used >= minute.limit else second if second.used >= second.limit else None
            if full is not None:
                self.rejected[operation] += 1
                raise StreamError(429, TOO_MANY_REQUESTS, headers=full.headers())
            minute.used += 1
            second.used += 1
            return minute.headers()

    def _bucket(self, name: str) -> tuple[_Window, _Window]:
        if name not in self._windows:
            per_minute = self._per_minute[name]
            self._windows[name] = (_Window(60, per_minute), _Window(1, max(per_minute // BURST_DIVISOR, 1)))
        return self._windows[name]
