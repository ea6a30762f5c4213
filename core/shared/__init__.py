"""State every instance must agree on, behind one small interface with two implementations.

- ``LocalState`` (shared/local.py): in this process. The default; needs nothing else.
- ``RedisState`` (shared/redis_state.py): on one Redis, shared by every instance; while
  Redis is away it decides with a ``LocalState`` of its own, so the webhook keeps answering.

What lives here: which commands were already taken (dedupe), the ``rate_limit`` budgets,
the token budgets (``budget:``, reserved in the ack and settled after the answer), the pacing of Stream message updates (which Stream counts per app, not per instance), and,
with Redis, the reply jobs themselves, each leased to the instance running it, so that a
reply whose instance dies is claimed and run again by another (slashbots/leases.py).

For conversations beyond the command (slashbots/events.py): the threads each bot answered
in, the once-a-minute allowance of a public refusal, and the way a stop pressed in a
channel reaches the jobs answering there, on whichever instance runs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Collection, Literal, Protocol, Sequence

from slashbots.budgets import Reservation, Settlement
from slashbots.ratelimit import Rate

CLAIM_TTL = 600.0  # seconds a command's ids are remembered: Stream retries within seconds
JOB_TTL = 3600.0  # seconds a reply job is kept at most, whatever becomes of it

Outcome = Literal["accepted", "duplicate", "refused", "over_budget", "rate_limited"]


@dataclass(frozen=True)
class Job:
    """A reply job as stored, so that another instance can run it again: ``payload`` rebuilds its request."""

    id: str
    payload: str


@dataclass(frozen=True)
class Orphan:
    """A job claimed from an instance that died or handed it back."""

    id: str
    payload: str
    attempt: int  # 2 for its first rerun
    messages: int  # reply messages earlier runs posted
    stopped: bool  # stopped by a user: end it, never run it again


@dataclass(frozen=True)
class Admission:
    """What became of a command in the ack."""

    outcome: Outcome
    wait: float = 0.0  # rate_limited: seconds until it would be accepted
    shared: bool = True  # False when Redis was away and this instance decided alone
    spent: tuple[str, ...] = ()  # over_budget: the keys of the charges used up
    held: tuple[str, ...] = ()  # over_budget: ... and of those only the answers running fill (reservations)


class SharedState(Protocol):
    durable: bool  # replies survive this instance (leases below); False: they live and die with it
    owner: str  # this instance, as the owner of leases
    # Called with a job's id when an admit that missed its deadline (decided locally meanwhile)
    # turns out to have recorded the job in Redis as this instance's after all.
    on_late_job: Callable[[str], None] | None

    async def admit(self, claims: Sequence[str], limits: Sequence[tuple[str, Rate]], *, take: bool = True,
                    job: Job | None = None, reservation: Reservation | None = None) -> Admission:
        """Claim a command, atomically: ``duplicate`` if any of ``claims`` was claimed before; else,
        unless ``take`` is False (the caller turns it away for reasons of its own: ``refused``),
        ``over_budget`` if a charge of ``reservation`` has no room left, ``rate_limited`` if a
        limit is spent (either way charging nothing), else charge every ``(key, rate)`` limit,
        hold the reservation and claim it (``accepted``). An accepted ``job`` is recorded,
        leased to this instance."""
        ...

    async def settle(self, settlement: Settlement) -> None:
        """An answer's run ended: add the tokens it used to its budgets, and release its reservation
        if ``settlement.final``. With Redis, also counts them in the per-day usage counters."""
        ...

    async def renew(self, job_ids: Collection[str]) -> set[str]:
        """Extend this instance's leases; returns the ids it no longer holds (taken over, or stopped)."""
        ...

    async def claim_orphans(self, most: int) -> list[Orphan]:
        """Take over up to ``most`` jobs whose lease has lapsed."""
        ...

    async def owns(self, job_id: str) -> bool | None:
        """Whether this instance still holds the job (None: cannot tell, Redis is away)."""
        ...

    async def note_messages(self, job_id: str, count: int) -> None:
        """The reply now spans ``count`` messages (a shorter rerun removes the rest)."""
        ...

    async def finish(self, job_id: str) -> None:
        """The final text has landed: forget the job."""
        ...

    async def release(self, job_ids: Collection[str]) -> None:
        """Hand jobs back (shutting down): their leases lapse at once, for another instance to claim."""
        ...

    async def write_slot(self, *, urgent: bool = False) -> float:
        """Reserve one Stream message update; seconds to wait before sending it (0 when ``urgent``)."""
        ...

    # -- conversations ---------------------------------------------------------------------------

    async def remember_thread(self, parent_ids: Collection[str], command: str, ttl: float) -> None:
        """``command``'s bot answered in the threads under ``parent_ids``: remember it for ``ttl`` seconds."""
        ...

    async def thread_bots(self, parent_id: str) -> set[str] | None:
        """The commands whose bots answered in the thread under ``parent_id``; None: cannot tell now."""
        ...

    async def first_in(self, key: str, seconds: float) -> bool:
        """True for the first caller of ``key`` in ``seconds``, False for the rest (True when it cannot tell)."""
        ...

    async def track(self, job_id: str, cid: str) -> None:
        """The (durable) job answers in channel ``cid``, so that a stop pressed there finds it."""
        ...

    async def running_in(self, cid: str) -> list[str]:
        """The durable jobs answering in ``cid`` now, on any instance ([] without Redis: Replies knows its own)."""
        ...

    async def stop(self, job_ids: Collection[str]) -> None:
        """Mark durable jobs stopped, so that they never run again, and tell every instance at once."""
        ...

    def on_stop(self, listener: Callable[[set[str]], None]) -> None:
        """Call ``listener`` with the ids of this instance's jobs found stopped: told at once by ``stop``
        (at most once), or found so by a lease renewal or a write's fence check (within a second)."""
        ...

    async def first_of_many(self, key: str, wait: float) -> bool:
        """For work every instance does at start-up (the sync with Stream): True for the first
        caller of ``key``, at once; the others wait until it calls ``done(key)``, or ``wait``
        seconds pass, and get False. Either way, they then do the work themselves."""
        ...

    async def done(self, key: str) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...
