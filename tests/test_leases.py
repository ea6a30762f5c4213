"""Leases on reply jobs, in one process: what is recorded in the shared state, and which replies a lost lease stops."""

from __future__ import annotations

import asyncio

from slashbots.leases import Lease, LeaseKeeper
from slashbots.replies import Job, Replies
from slashbots.shared.local import LocalState


class Recording(LocalState):
    """The in-process state, durable, noting the message counts it is told."""

    durable = True

    def __init__(self) -> None:
        super().__init__(writes_per_second=15.0)
        self.noted: list[tuple[str, int]] = []

    async def note_messages(self, job_id: str, count: int) -> None:
        self.noted.append((job_id, count))


async def test_only_continuations_are_recorded_every_run_has_a_first_message() -> None:
    shared = Recording()
    lease = Lease(LeaseKeeper(shared, 5.0), "echo:m1", durable=True)
    await lease.posted(1)
    assert shared.noted == []
    await lease.posted(2)
    assert shared.noted == [("echo:m1", 2)]


async def test_a_lost_lease_stops_only_a_reply_that_still_holds_it() -> None:
    """A renewal can find a job gone because this instance has just finished it: that reply is not stopped."""
    replies = Replies(gateway=None, providers={}, hook=None, shared=Recording())  # type: ignore[arg-type]
    tasks = {}
    for job_id in ("echo:running", "echo:finishing"):
        task = asyncio.create_task(asyncio.sleep(10))
        replies.running[task] = Job(request=None, lease=Lease(replies.leases, job_id, durable=True))  # type: ignore[arg-type]
        tasks[job_id] = task
    replies.leases.hold("echo:running")  # "echo:finishing" was dropped before its job was finished
    replies._lost({"echo:running", "echo:finishing"})
    await asyncio.sleep(0)
    assert tasks["echo:running"].cancelled()
    assert replies.running[tasks["echo:running"]].quiet == "lease_lost"
    assert not tasks["echo:finishing"].done()
    tasks["echo:finishing"].cancel()
