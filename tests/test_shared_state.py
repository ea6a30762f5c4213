"""Shared state on a real redis-server: two RedisStates stand for two instances of the server."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

import pytest

from slashbots.metrics import Metrics
from slashbots.ratelimit import Rate
from slashbots.shared import Job
from slashbots.shared.expiring import Expiring
from slashbots.shared.local import LocalState
from slashbots.shared.redis_state import RedisState, redacted
from tests.conftest import wait_for

FIVE_A_MINUTE = [("echo:user:alice", Rate.parse("5/minute"))]


@asynccontextmanager
async def instances(url: str, count: int = 2, timeout: float = 0.05) -> AsyncIterator[list[RedisState]]:
    states = [RedisState(url, prefix="slashbots:test-app:", writes_per_second=10, timeout=timeout, metrics=Metrics())
              for _ in range(count)]
    for state in states:
        await state.start()
    try:
        yield states
    finally:
        for state in states:
            await state.close()


async def test_a_command_is_claimed_once_across_instances(redis_server) -> None:
    async with instances(redis_server.url) as (a, b):
        first = await a.admit(["message:m1", "webhook:w1"], [])
        again_elsewhere = await b.admit(["message:m1", "webhook:w2"], [])  # the same message, another delivery
        replayed = await b.admit(["message:m2", "webhook:w1"], [])  # the same webhook id
        other = await b.admit(["message:m3", "webhook:w3"], [])
    assert [first.outcome, again_elsewhere.outcome, replayed.outcome, other.outcome] == [
        "accepted", "duplicate", "duplicate", "accepted"]
    ttl = redis_server.client().pttl("slashbots:test-app:claim:message:m1")
    assert 590_000 < ttl <= 600_000  # remembered for ten minutes, as in one process


async def test_a_refused_command_is_not_claimed_and_charges_nothing(redis_server) -> None:
    async with instances(redis_server.url) as (a, b):
        assert (await a.admit(["message:m1"], FIVE_A_MINUTE, take=False)).outcome == "refused"
        assert (await b.admit(["message:m1"], FIVE_A_MINUTE)).outcome == "accepted"
    assert redis_server.client().exists("slashbots:test-app:limit:echo:user:alice") == 1


async def test_one_limit_across_instances(redis_server) -> None:
    async with instances(redis_server.url, count=3) as states:
        outcomes = [await states[n % 3].admit([f"message:{n}"], FIVE_A_MINUTE) for n in range(9)]
    assert [o.outcome for o in outcomes] == ["accepted"] * 5 + ["rate_limited"] * 4
    assert 11.0 < outcomes[5].wait <= 12.0  # one command every 12 s, on Redis's clock
    assert all(o.shared for o in outcomes)


async def test_the_write_budget_is_paced_across_instances(redis_server) -> None:
    async with instances(redis_server.url) as (a, b):
        waits = [await (a if n % 2 else b).write_slot() for n in range(14)]
    # 10 a second after a burst of one second's worth (11 slots), whichever instance asks.
    assert waits[:11] == [0.0] * 11
    assert waits[11:] == pytest.approx([0.1, 0.2, 0.3], abs=0.03)


async def test_redis_down_the_ack_decides_locally_in_time_and_logs_once(redis_server, caplog) -> None:
    caplog.set_level(logging.INFO, logger="slashbots.redis")
    async with instances(redis_server.url, count=1) as (state,):
        assert (await state.admit(["message:before"], [])).outcome == "accepted"
        redis_server.stop()
        started = time.monotonic()
        outcomes = [await state.admit([f"message:{n}"], FIVE_A_MINUTE) for n in range(8)]
        took = time.monotonic() - started
        assert [o.outcome for o in outcomes] == ["accepted"] * 5 + ["rate_limited"] * 3  # this instance's own limit
        assert not any(o.shared for o in outcomes)
        assert (await state.admit(["message:3"], [])).outcome == "duplicate"  # dedupe goes on, locally
        assert took < 8 * 0.05 * 2  # within the deadline each, and refused at once once the breaker is open
        outage = [r.getMessage() for r in caplog.records]
        assert len(outage) == 1 and "is unreachable" in outage[0] and "each instance decides alone" in outage[0]

        redis_server.start()  # empty, as after a restart without persistence
        state.breaker.open_until = 0  # skip the breaker's cool-down rather than wait it out
        assert (await state.admit(["message:after"], [])).outcome == "accepted"
        assert state.metrics.redis_up._value.get() == 1
        back = [r.getMessage() for r in caplog.records][1:]
        assert len(back) == 1 and "is back after" in back[0] and "state is shared again" in back[0]
        assert redis_server.client().exists("slashbots:test-app:claim:message:after") == 1


async def test_a_hung_redis_costs_one_deadline_then_none(redis_server) -> None:
    async with instances(redis_server.url, count=1, timeout=0.05) as (state,):
        await state.admit(["message:warm"], [])
        redis_server.pause()
        try:
            times = []
            for n in range(6):
                started = time.monotonic()
                assert (await state.admit([f"message:{n}"], [])).outcome == "accepted"
                times.append(time.monotonic() - started)
        finally:
            redis_server.resume()
    # Three calls wait out the 50 ms deadline (the breaker's threshold); then it is open and costs nothing.
    assert all(t >= 0.04 for t in times[:3]), times
    assert all(t < 0.02 for t in times[3:]), times
    assert state.metrics.local_decisions.labels("admit")._value.get() == 6


async def test_local_state_keeps_the_same_contract() -> None:
    state = LocalState(writes_per_second=10)
    assert (await state.admit(["message:1"], FIVE_A_MINUTE, take=False)).outcome == "refused"
    assert [(await state.admit([f"message:{n}"], FIVE_A_MINUTE)).outcome for n in range(6)] == (
        ["accepted"] * 5 + ["rate_limited"])
    assert (await state.admit(["message:0"], [])).outcome == "duplicate"
    assert await state.first_of_many("sync", wait=1) is True


async def test_one_instance_syncs_while_the_others_wait(redis_server) -> None:
    async with instances(redis_server.url, count=3) as (a, b, c):
        assert await a.first_of_many("sync:abc", wait=5) is True
        client = redis_server.client()
        polled = client.info("commandstats").get("cmdstat_exists", {}).get("calls", 0)
        waiting = [asyncio.create_task(x.first_of_many("sync:abc", wait=5)) for x in (b, c)]
        # Each has asked twice whether the leader is done, and neither has gone on: they wait ...
        await wait_for(lambda: client.info("commandstats").get("cmdstat_exists", {}).get("calls", 0) >= polled + 4,
                       what="the others to poll")
        assert not any(task.done() for task in waiting)
        await a.done("sync:abc")
        assert await asyncio.gather(*waiting) == [False, False]  # ... and go on once it is done


def test_the_redis_url_never_shows_its_password() -> None:
    assert redacted("redis://:s3cret@redis.internal:6380/2") == "redis://redis.internal:6380/2"
    assert "s3cret" not in redacted("rediss://user:s3cret@redis.internal/0")


async def test_a_late_event_loop_is_not_taken_for_a_redis_outage(redis_server) -> None:
    async with instances(redis_server.url, count=1, timeout=0.05) as (state,):
        await state.admit(["message:warm"], [])
        for n in range(4):  # more than the breaker's threshold
            admitting = asyncio.create_task(state.admit([f"message:{n}"], []))
            await asyncio.sleep(0)  # the admit has started its deadline ...
            time.sleep(0.2)  # ... and this loop stalls past it, as a loaded one does
            assert (await admitting).outcome == "accepted"  # decided here, in time for the ack
        # No outage: the breaker counted nothing, and Redis got every claim (late) all the same.
        assert state.breaker.failures == 0 and state.metrics.redis_up._value.get() == 1
        client = redis_server.client()
        await wait_for(lambda: all(client.exists(f"slashbots:test-app:claim:message:{n}") for n in range(4)),
                       what="the late calls to land")
        assert not state._pending


async def test_an_admit_that_misses_its_deadline_still_holds_the_job_it_recorded(redis_server) -> None:
    adopted: list[str] = []
    async with instances(redis_server.url, count=1, timeout=0.000001) as (state,):
        state.on_late_job = adopted.append
        admission = await state.admit(["message:late"], [], job=Job("echo:late", "{}"))
        assert not admission.shared  # decided here, in time for the ack ...
        await wait_for(lambda: adopted, what="Redis's late answer")
        assert adopted == ["echo:late"]  # ... and Redis's late answer says the job is recorded as ours
        owner = redis_server.client().hget("slashbots:test-app:job:echo:late", "owner")
    assert owner.decode() == state.owner


async def test_finished_jobs_are_forgotten_in_the_next_batch(redis_server) -> None:
    async with instances(redis_server.url, count=1) as (state,):
        for n in range(3):
            await state.admit([f"message:{n}"], [], job=Job(f"echo:{n}", "{}"))
            await state.finish(f"echo:{n}")
        assert redis_server.client().zcard("slashbots:test-app:leases") == 3  # not yet: batched
        await state.flush()
    client = redis_server.client()
    assert client.zcard("slashbots:test-app:leases") == 0
    assert not client.keys("slashbots:test-app:job:*")


# ---- conversations: threads, public refusals, stops ------------------------------------------------

STOPS = "slashbots:test-app:stops"


async def subscribed(redis_server, count: int) -> None:
    """Until ``count`` instances listen for stops (each subscribes in the background once started)."""
    client = redis_server.client()
    await wait_for(lambda: dict(client.pubsub_numsub(STOPS)).get(STOPS.encode(), 0) >= count, what="subscriptions")


async def test_threads_a_bot_answered_in_are_known_to_every_instance_until_they_expire(redis_server) -> None:
    async with instances(redis_server.url) as (a, b):
        await a.remember_thread(["parent-1", "answer-1"], "gpt", ttl=60)
        await b.remember_thread(["parent-1"], "echo", ttl=60)
        assert await b.thread_bots("parent-1") == {"gpt", "echo"}
        assert await a.thread_bots("answer-1") == {"gpt"}
        assert await a.thread_bots("someone-elses") == set()
        await a.remember_thread(["short"], "gpt", ttl=0.05)
        await wait_for(lambda: not redis_server.client().exists("slashbots:test-app:thread:short"), what="expiry")
        assert await b.thread_bots("short") == set()
    assert 59_000 < redis_server.client().pttl("slashbots:test-app:thread:parent-1") <= 60_000


async def test_a_public_refusal_is_allowed_once_a_window_across_instances(redis_server) -> None:
    async with instances(redis_server.url) as (a, b):
        assert [await a.first_in("refusal:alice", 60), await b.first_in("refusal:alice", 60)] == [True, False]
        assert await b.first_in("refusal:bob", 60) is True


async def test_a_stop_reaches_the_instance_running_the_job_and_marks_it_for_good(redis_server) -> None:
    async with instances(redis_server.url) as (runner, other):
        heard: list[set[str]] = []
        runner.on_stop(heard.append)
        for job in ("gpt:m1", "gpt:m2"):
            assert (await runner.admit([f"message:{job}"], [], job=Job(job, "{}"))).outcome == "accepted"
            await runner.track(job, "messaging:general")
        await runner.track("gpt:gone", "messaging:general")  # finished long ago: its hash is gone
        await subscribed(redis_server, 2)
        assert sorted(await other.running_in("messaging:general")) == ["gpt:gone", "gpt:m1", "gpt:m2"]
        assert await other.running_in("messaging:random") == []

        await other.stop(["gpt:m1", "gpt:gone"])
        await wait_for(lambda: heard, what="the stop to be heard")
        assert heard == [{"gpt:m1"}]  # told at once, over pub/sub; the finished job is left alone
        assert not redis_server.client().exists("slashbots:test-app:job:gpt:gone")
        # Whatever is missed on pub/sub is found within a renewal, or at the next write's fence check.
        heard.clear()
        assert await runner.renew({"gpt:m1", "gpt:m2"}) == set()  # stopped is not lost: it is still ours to end
        assert heard == [{"gpt:m1"}]
        assert await runner.owns("gpt:m1") is False and heard[-1] == {"gpt:m1"}
        assert await runner.owns("gpt:m2") is True


async def test_a_stopped_job_whose_instance_died_is_claimed_as_stopped(redis_server) -> None:
    async with instances(redis_server.url) as (dead, alive):
        await dead.admit(["message:m1"], [], job=Job("gpt:m1", "{}"))
        await alive.stop(["gpt:m1"])
        await dead.release(["gpt:m1"])  # its lease lapses at once
        [orphan] = await alive.claim_orphans(most=5)
    assert (orphan.id, orphan.stopped) == ("gpt:m1", True)


async def test_local_state_remembers_threads_and_refusals_in_process() -> None:
    state = LocalState(writes_per_second=10)
    await state.remember_thread(["p1"], "gpt", ttl=60)
    await state.remember_thread(["p1"], "echo", ttl=60)
    assert await state.thread_bots("p1") == {"gpt", "echo"}
    assert await state.thread_bots("p2") == set()
    assert [await state.first_in("refusal:alice", 60) for _ in range(2)] == [True, False]
    assert await state.running_in("messaging:general") == []  # Replies knows the jobs of one process


def test_expiring_entries_go_at_their_time_or_when_crowded_out() -> None:
    now = [0.0]
    memory: Expiring[str] = Expiring(capacity=2, clock=lambda: now[0])
    memory.set("a", "1", ttl=10)
    memory.set("b", "2", ttl=1)
    now[0] = 1.0
    assert (memory.get("a"), memory.get("b")) == ("1", None)
    memory.set("c", "3", ttl=10)
    memory.set("d", "4", ttl=10)
    assert (memory.get("a"), memory.get("c"), memory.get("d"), len(memory)) == (None, "3", "4", 2)
