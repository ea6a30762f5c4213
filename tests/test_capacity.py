"""Load shedding on event-loop lag, and Stream's write budget shared by streaming replies."""

from __future__ import annotations

import asyncio
import time

import pytest

from slashbots.capacity import MAX_BACKLOG, LoopLag, Pacer
from slashbots.replies import Replies
from tests.conftest import final_reply, send, wait_for
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


def test_loop_lag_notices_a_late_loop_quickly_and_forgets_it_slowly() -> None:
    lag = LoopLag()
    lag.observe(0.3)  # one stall: noticed, but not yet overload
    assert lag.seconds == 0.15
    for _ in range(3):  # a loop that stays late: replies hogging it, as CPU-bound work would
        lag.observe(0.3)
    assert lag.seconds > 0.25
    settled = lag.seconds
    lag.observe(0.0)
    assert lag.seconds == settled * 0.8  # back on time: it lets go a fifth at a time
    for _ in range(30):
        lag.observe(0.0)
    assert lag.seconds < 0.001


async def test_loop_lag_is_measured_on_the_running_loop() -> None:
    lag = LoopLag(every=0.01)
    watching = asyncio.create_task(lag.watch())
    try:
        for _ in range(4):  # timers due every 10 ms, each run 300 ms late
            await asyncio.sleep(0.015)
            time.sleep(0.3)
        await wait_for(lambda: lag.seconds > 0.1, what="the stalls to show")  # well under the 0.3 s they were late
    finally:
        watching.cancel()


def test_a_late_loop_means_no_room() -> None:
    replies = Replies(gateway=None, providers={}, hook=None, max_lag=0.25)  # type: ignore[arg-type]
    assert not replies.full
    replies.lag.seconds = 0.3
    assert replies.full


def test_the_pacer_hands_out_send_times_at_the_rate_after_a_burst() -> None:
    now = [100.0]
    pacer = Pacer(per_second=10, burst=0.5, clock=lambda: now[0])
    waits = [pacer.reserve() for _ in range(8)]
    # A burst of 0.5 s worth (6 updates: the budget's own, plus five ahead) goes at once, then one every 0.1 s.
    assert waits == pytest.approx([0, 0, 0, 0, 0, 0, 0.1, 0.2])


def test_urgent_updates_go_at_once_and_push_patches_back() -> None:
    now = [100.0]
    pacer = Pacer(per_second=10, burst=0.0, clock=lambda: now[0])
    assert pacer.reserve() == 0
    assert pacer.reserve(urgent=True, count=3) == 0  # three finals, sent now
    assert pacer.reserve() == pytest.approx(0.4)  # the next patch waits for the four slots before it


def test_a_backlog_of_urgent_updates_holds_a_patch_back_at_most_max_backlog() -> None:
    now = [100.0]
    pacer = Pacer(per_second=10, burst=0.0, clock=lambda: now[0])
    pacer.reserve(urgent=True, count=10_000)
    assert pacer.reserve() == pytest.approx(MAX_BACKLOG)


async def test_concurrent_streams_share_the_write_budget(serve, chat) -> None:
    served = serve(WRITERS, extra="plugins:\n  - slashbots.paced_writers\nserver: {stream_writes_per_second: 5}\n")
    started = time.monotonic()
    await asyncio.gather(*(send(chat, "/write", cid=f"messaging:c{n}") for n in range(4)))
    for n in range(4):
        [reply] = await final_reply(served.standin, "writer-bot", cid=f"messaging:c{n}")
        assert reply["text"] == ("w " * 40).strip()
    duration = time.monotonic() - started
    updates = [c for c in message_writes(served.standin) if c["method"] == "PUT"]
    # 5 a second after a burst of one second's worth (6). Every update counts, first and final
    # texts included, but those never wait: the four finals at the very end are borrowed from
    # time after it (a later patch would wait for them).
    assert len(updates) <= 6 + duration * 5 + 4, (len(updates), duration)
    assert len(updates) >= 4 * 2 + duration * 5 * 0.5  # and patches use what is left (with 2x headroom for a loaded machine)
