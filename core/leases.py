"""Durable replies: this instance's leases on the replies it runs, and the replies of instances that died.

With Redis, every accepted command is recorded in the ack as a job leased to the instance
that took it (shared/admit.lua). That instance renews its leases every third of
``reply_lease_seconds``; every instance looks, as often, for jobs whose lease lapsed (their
instance was killed, or handed them back on SIGTERM), claims them, and runs each again
from the start. A rerun writes into the same messages: their ids are derived from the
job, so Stream refuses to post them twice, and a run that is not the job's owner stops.

Fencing is honest about its limits: before each write the relay asks ``may_write``. Within
80% of a lease after its last renewal the answer is known here; past that (this process
was paused, say) Redis is asked. Stream has no conditional write, so a write already on
its way when the lease lapsed can still land after the new owner's: the window is one
Stream call (docs/deploy.md). While Redis is away, a lease cannot be checked, and a
running reply keeps running.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Callable

from slashbots.shared import Orphan, SharedState

log = logging.getLogger("slashbots.leases")

# Reply message ids are uuid5s of the job and the message's number: valid Stream ids, the
# same in every instance, and not guessable from the command alone without this namespace.
REPLY_IDS = uuid.UUID("6f1c2a9e-3b7d-4e55-9a41-2f8e5d0c7b13")
SURE_FOR = 0.8  # share of a lease after a renewal during which it is known to be held without asking


def reply_message_id(job_id: str, index: int) -> str:
    """The id of message ``index`` of the reply to job ``job_id``: the same in every instance and every run."""
    return str(uuid.uuid5(REPLY_IDS, f"{job_id}/{index}"))


class Lease:
    """One reply's hold on its job: what the relay asks before each write (relay.Ownership)."""

    def __init__(self, keeper: LeaseKeeper, job_id: str, *, durable: bool, attempt: int = 1,
                 earlier_messages: int = 0) -> None:
        self.keeper = keeper
        self.job_id = job_id
        self.durable = durable  # recorded in Redis; False when Redis was away at the ack (or is not used)
        self.attempt = attempt
        self.rerun = attempt > 1
        self.earlier_messages = earlier_messages

    def message_id(self, index: int) -> str:
        return reply_message_id(self.job_id, index)

    async def may_write(self) -> bool:
        return not self.durable or await self.keeper.may_write(self.job_id)

    async def posted(self, count: int) -> None:
        # Only continuations need recording: a rerun removes the messages past its own last one,
        # and every run has a first message. Most replies are one message, so most make no call.
        if self.durable and count > 1:
            await self.keeper.shared.note_messages(self.job_id, count)


class LeaseKeeper:
    """Renews this instance's leases, checks them for the relay, and claims lapsed ones."""

    def __init__(self, shared: SharedState, lease_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.shared = shared
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.held: dict[str, float] = {}  # job id -> when its lease was last known to be extended

    @property
    def every(self) -> float:
        """How often leases are renewed and lapsed ones looked for."""
        return min(self.lease_seconds / 3, 1.0)

    def hold(self, job_id: str) -> None:
        """This instance has just taken the job (the ack, or a claim): its lease runs from now."""
        self.held[job_id] = self.clock()

    def drop(self, job_id: str) -> None:
        self.held.pop(job_id, None)

    async def may_write(self, job_id: str) -> bool:
        renewed = self.held.get(job_id)
        if renewed is not None and self.clock() - renewed < self.lease_seconds * SURE_FOR:
            return True
        owns = await self.shared.owns(job_id)
        if owns is None:
            return True  # Redis is away: the lease cannot be checked, so the reply goes on
        if owns:
            self.hold(job_id)
        return owns

    async def keep(self, lost: Callable[[set[str]], None], orphans: Callable[[list[Orphan]], None],
                   room: Callable[[], int]) -> None:
        """Forever: renew, report the jobs lost to ``lost``, and hand up to ``room()`` lapsed jobs to ``orphans``."""
        while True:
            await asyncio.sleep(self.every)
            try:
                await self._round(lost, orphans, room)
            except Exception:  # a bug here must not end lease keeping for the life of the process
                log.exception("keeping reply leases failed; trying again in %.1fs", self.every)

    async def _round(self, lost: Callable[[set[str]], None], orphans: Callable[[list[Orphan]], None],
                     room: Callable[[], int]) -> None:
        held = set(self.held)
        if held:
            asked = self.clock()  # before the call: the lease runs from no later than this
            gone = await self.shared.renew(held)
            for job_id in held - gone:
                if job_id in self.held:
                    self.held[job_id] = asked
            if gone:
                lost(gone)
        free = room()
        if free > 0:
            asked = self.clock()
            claimed = await self.shared.claim_orphans(most=min(free, 20))
            for orphan in claimed:
                self.held[orphan.id] = asked
            if claimed:
                orphans(claimed)
