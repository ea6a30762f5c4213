"""State every instance must agree on, behind one small interface with two implementations.

- ``LocalState`` (shared/local.py): in this process. The default; needs nothing else.
- ``RedisState`` (shared/redis_state.py): on one Redis, shared by every instance; while
  Redis is away it decides with a ``LocalState`` of its own, so the webhook keeps answering.

What lives here: which commands were already taken (dedupe), the ``rate_limit`` budgets,
and the pacing of Stream message updates, which Stream counts per app, not per instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, Sequence

from slashbots.ratelimit import Rate

CLAIM_TTL = 600.0  # seconds a command's ids are remembered: Stream retries within seconds

Outcome = Literal["accepted", "duplicate", "refused", "rate_limited"]


@dataclass(frozen=True)
class Admission:
    """What became of a command in the ack."""

    outcome: Outcome
    wait: float = 0.0  # rate_limited: seconds until it would be accepted
    shared: bool = True  # False when Redis was away and this instance decided alone


class SharedState(Protocol):
    async def admit(self, claims: Sequence[str], limits: Sequence[tuple[str, Rate]], *, take: bool = True) -> Admission:
        """Claim a command, atomically: ``duplicate`` if any of ``claims`` was claimed before; else,
        unless ``take`` is False (the caller turns it away for reasons of its own: ``refused``),
        charge every ``(key, rate)`` limit and claim it (``accepted``), or charge nothing
        (``rate_limited``)."""
        ...

    async def write_slot(self, *, urgent: bool = False) -> float:
        """Reserve one Stream message update; seconds to wait before sending it (0 when ``urgent``)."""
        ...

    async def first_of_many(self, key: str, wait: float) -> bool:
        """For work every instance does at start-up (the sync with Stream): True for the first
        caller of ``key``, at once; the others wait until it calls ``done(key)``, or ``wait``
        seconds pass, and get False. Either way, they then do the work themselves."""
        ...

    async def done(self, key: str) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...
