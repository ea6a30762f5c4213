"""How much work one process takes on (event-loop lag), and the pacing of Stream message updates.

The ack and the replies share one event loop. When replies keep it busy, acks wait in line
and Stream's one-second budget runs out; counting replies in flight notices that only after
seconds of queue. Watching how late the loop runs a timer notices within milliseconds, so
new commands are told "busy" while the loop catches up.

Stream limits message updates per app (1,000 a minute by default, for every instance
together). ``Pacer`` hands out send times for updates at ``per_second``: a streaming reply
reserves the next free time before each patch and waits for it, so replies take turns
(first come, first served) and the app as a whole stays under the rate. First and final
texts are never held back, but they use up their share, so patches make room for them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

MAX_BACKLOG = 5.0  # seconds: under more urgent writes than the budget allows, a patch waits at most this


class LoopLag:
    """How late the event loop is running, smoothed: one stall (a GC pass, a noisy neighbour)
    moves it halfway, so only lag that lasts a few ticks turns commands away."""

    def __init__(self, every: float = 0.025) -> None:
        self.every = every
        self.seconds = 0.0

    def observe(self, late: float) -> None:
        """Fold in one tick that came ``late`` seconds after it was due."""
        weight = 0.5 if late > self.seconds else 0.2  # quicker to notice than to forget
        self.seconds += (late - self.seconds) * weight

    async def watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self.every)
            self.observe(max(loop.time() - started - self.every, 0.0))


class Pacer:
    """Send times for Stream message updates, ``per_second`` at most, with bursts of ``burst`` seconds' worth.

    GCRA as a schedule rather than a gate: ``tat`` is when the rate next has room, and a
    reservation gets ``max(now, tat - burst)``. The same arithmetic runs in Redis when
    instances share the budget (slashbots/shared/write_slot.lua).
    """

    def __init__(self, per_second: float, burst: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / per_second
        self.burst = burst
        self.clock = clock
        self.tat = 0.0

    def reserve(self, *, urgent: bool = False, count: int = 1) -> float:
        """Take ``count`` update slots; returns seconds to wait before sending (0 when ``urgent``)."""
        now = self.clock()
        tat = max(self.tat, now)
        wait = 0.0 if urgent else max(tat - self.burst - now, 0.0)
        self.tat = min(tat + count * self.interval, now + MAX_BACKLOG)
        return wait
