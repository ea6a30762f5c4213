"""Fault injection: make chosen requests fail or wait, as Stream does on a bad day."""

from __future__ import annotations

import asyncio
import random
import re
import threading
import time
from dataclasses import dataclass

from slashbots.sandbox.standin.errors import TOO_MANY_REQUESTS, StreamError


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int | None
    times: int
    headers: dict[str, str]
    delay: float
    chance: float
    reset_in: int


class Faults:
    """Faults waiting for a matching request; each is used up after `times` hits."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._faults: list[Fault] = []
        self._random = random.Random(0)  # chance faults: seeded, so a failing run can be repeated

    def inject(self, method: str, path_pattern: str, status: int | None, times: int, headers: dict[str, str],
               delay: float, chance: float, reset_in: int) -> None:
        with self._lock:
            # Header names in lower case, as Stream sends them (and so that a test's own wins below).
            given = {name.lower(): value for name, value in headers.items()}
            self._faults.append(Fault(method.upper(), re.compile(path_pattern), status, times, given,
                                      delay, chance, reset_in))

    async def apply(self, method: str, path: str) -> None:
        """Wait and/or raise as the first matching fault says; nothing when none matches."""
        if not self._faults:  # the usual case, settled without taking the lock
            return
        with self._lock:
            fault = next((f for f in self._faults if f.method in ("*", method) and f.pattern.search(path)
                          and (f.chance >= 1 or self._random.random() < f.chance)), None)
            if fault is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
        if fault is None:
            return
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status is not None:
            message = f"injected fault (HTTP {fault.status})"
            headers = fault.headers
            if fault.status == 429:  # Stream always sends these on a 429; explicit headers win
                message = TOO_MANY_REQUESTS
                reset = str(int(time.time()) + fault.reset_in)
                headers = {"x-ratelimit-limit": "1000", "x-ratelimit-remaining": "0", "x-ratelimit-reset": reset, **headers}
            raise StreamError(fault.status, message, headers=headers)
