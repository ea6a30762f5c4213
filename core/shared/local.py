"""Shared state kept in this process: right for one instance, and the fallback while Redis is away."""

from __future__ import annotations

import time
from typing import Callable, Collection, Sequence

from slashbots.budgets import Ledger, Reservation, Settlement
from slashbots.capacity import Pacer
from slashbots.dedupe import RecentKeys
from slashbots.ratelimit import Rate, RateLimiter
from slashbots.shared import CLAIM_TTL, Admission, Job, Orphan
from slashbots.shared.expiring import Expiring


class LocalState:
    """Replies are not durable here: they live and die with this process, so the job calls do nothing."""

    durable = False
    owner = "this process"
    on_late_job = None  # every decision here is on time

    def __init__(self, writes_per_second: float, clock: Callable[[], float] = time.time) -> None:
        self.claims = RecentKeys(ttl=CLAIM_TTL)
        self.limiter = RateLimiter()
        self.pacer = Pacer(writes_per_second)
        self.ledger = Ledger(clock)
        self.threads: Expiring[frozenset[str]] = Expiring()  # parent id -> the commands that answered under it
        self.allowances: Expiring[bool] = Expiring()

    async def admit(self, claims: Sequence[str], limits: Sequence[tuple[str, Rate]], *, take: bool = True,
                    job: Job | None = None, reservation: Reservation | None = None) -> Admission:
        return self.admit_now(claims, limits, take=take, reservation=reservation)

    def admit_now(self, claims: Sequence[str], limits: Sequence[tuple[str, Rate]], *, take: bool = True,
                  reservation: Reservation | None = None) -> Admission:
        if self.claims.seen(claims):
            return Admission("duplicate")
        if not take:
            return Admission("refused")
        spent, held = self.ledger.full(reservation) if reservation is not None else ([], [])
        if spent or held:
            return Admission("over_budget", spent=tuple(charge.key for charge in spent),
                             held=tuple(charge.key for charge in held))
        wait = self.limiter.acquire(limits) if limits else 0.0
        if wait:
            return Admission("rate_limited", wait)
        if reservation is not None:
            self.ledger.reserve(reservation)
        self.claims.remember(claims)
        return Admission("accepted")

    async def settle(self, settlement: Settlement) -> None:
        self.ledger.settle(settlement)

    async def write_slot(self, *, urgent: bool = False) -> float:
        return self.pacer.reserve(urgent=urgent)

    async def renew(self, job_ids: Collection[str]) -> set[str]:
        return set()

    async def claim_orphans(self, most: int) -> list[Orphan]:
        return []

    async def owns(self, job_id: str) -> bool | None:
        return True

    async def note_messages(self, job_id: str, count: int) -> None:
        pass

    async def finish(self, job_id: str) -> None:
        pass

    async def release(self, job_ids: Collection[str]) -> None:
        pass

    async def remember_thread(self, parent_ids: Collection[str], command: str, ttl: float) -> None:
        for parent_id in parent_ids:
            self.threads.set(parent_id, (self.threads.get(parent_id) or frozenset()) | {command}, ttl)

    async def thread_bots(self, parent_id: str) -> set[str] | None:
        return set(self.threads.get(parent_id) or ())

    async def first_in(self, key: str, seconds: float) -> bool:
        return self.first_in_now(key, seconds)

    def first_in_now(self, key: str, seconds: float) -> bool:
        if self.allowances.get(key):
            return False
        self.allowances.set(key, True, seconds)
        return True

    # Stops: in one process the replies running here are all there are (Replies.stop finds them).

    async def track(self, job_id: str, cid: str) -> None:
        pass

    async def running_in(self, cid: str) -> list[str]:
        return []

    async def stop(self, job_ids: Collection[str]) -> None:
        pass

    def on_stop(self, listener: Callable[[set[str]], None]) -> None:
        pass

    async def first_of_many(self, key: str, wait: float) -> bool:
        return True  # one process: nobody to wait for

    async def done(self, key: str) -> None:
        pass

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass
