"""How much work one process takes on: event-loop lag, and Stream's budget for message writes.

The ack and the replies share one event loop. When replies keep it busy, acks wait in line
and Stream's one-second budget runs out; counting replies in flight notices that only after
seconds of queue. Watching how late the loop runs a timer notices within milliseconds, so
new commands are told "busy" while the loop catches up.

Stream limits message updates per app (1,000 a minute by default). Each streaming reply
patches its message every ``update_interval_ms``; with many replies at once, the budget is
shared out by spacing every reply's patches further apart. First text and final text are
never held back.
"""

from __future__ import annotations

import asyncio


class LoopLag:
    """How late the event loop is running, smoothed: one stall (a GC pass, a noisy neighbour)
    moves it halfway, so only lag that lasts a few ticks turns commands away."""

    def __init__(self, every: float = 0.025) -> None:
        self.every = every
        self.seconds = 0.0

    async def watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self.every)
            late = max(loop.time() - started - self.every, 0.0)
            weight = 0.5 if late > self.seconds else 0.2  # quicker to notice than to forget
            self.seconds += (late - self.seconds) * weight


class WriteBudget:
    """Stream message writes per second, shared by the replies streaming now."""

    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        self.streaming = 0

    def interval(self, least: float) -> float:
        """The time between one reply's patches: its own interval, or its share of the budget."""
        return max(least, self.streaming / self.per_second)
