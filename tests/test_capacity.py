"""Load shedding on event-loop lag, and Stream's write budget shared by streaming replies."""

from __future__ import annotations

import asyncio
import time

from slashbots.capacity import LoopLag, WriteBudget
from slashbots.replies import Replies
from tests.conftest import final_reply, send
from tests.test_relay import message_writes

WRITERS = """\
  - command: write
    description: Writes at a set pace
    provider: writer
    channel_types: [messaging]
    identity: {id: writer-bot, name: Writer bot}
    update_interval_ms: 50
    options: {pieces: 40, piece: "w ", delay: 0.05}
"""


async def test_loop_lag_rises_with_a_blocked_loop_and_falls_after() -> None:
    lag = LoopLag()
    watching = asyncio.create_task(lag.watch())
    try:
        await asyncio.sleep(0.1)
        assert lag.seconds < 0.05
        time.sleep(0.3)  # one stall: noticed, but not yet overload
        await asyncio.sleep(0.03)
        assert 0.1 < lag.seconds < 0.25
        for _ in range(4):  # a loop that stays late: replies hogging it, as CPU-bound work would
            time.sleep(0.3)
            await asyncio.sleep(0)  # lets the due timer run, late, and nothing else
        await asyncio.sleep(0)
        assert lag.seconds > 0.25
        await asyncio.sleep(1.0)
        assert lag.seconds < 0.05
    finally:
        watching.cancel()


def test_a_late_loop_means_no_room() -> None:
    replies = Replies(gateway=None, providers={}, hook=None, max_lag=0.25)  # type: ignore[arg-type]
    assert not replies.full
    replies.lag.seconds = 0.3
    assert replies.full


def test_the_write_budget_spaces_patches_as_more_replies_stream() -> None:
    budget = WriteBudget(per_second=10)
    assert budget.interval(0.25) == 0.25
    budget.streaming = 30
    assert budget.interval(0.25) == 3.0


async def test_concurrent_streams_share_the_write_budget(serve, chat) -> None:
    served = serve(WRITERS, extra="plugins:\n  - tests.support.writers\nserver: {stream_writes_per_second: 5}\n")
    started = time.monotonic()
    await asyncio.gather(*(send(chat, "/write", cid=f"messaging:c{n}") for n in range(4)))
    for n in range(4):
        [reply] = await final_reply(served.standin, "writer-bot", cid=f"messaging:c{n}")
        assert reply["text"] == ("w " * 40).strip()
    duration = time.monotonic() - started
    # Each reply: a placeholder, its first text and its final text are never held back;
    # the patches between them share 5 writes a second.
    assert len(message_writes(served.standin)) <= 4 * 3 + duration * 5 + 4
