"""Token budgets: parsing, periods, what the sender is told, and reservation and settlement in
one process (Ledger) and on Redis (admit.lua, settle.lua), which must agree."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from types import MappingProxyType
from typing import AsyncIterator

import pytest

from slashbots.budgets import Budget, Reservation, Settlement, charges, over_budget, period_start
from slashbots.metrics import Metrics
from slashbots.ratelimit import Rate
from slashbots.shared import Job
from slashbots.shared.local import LocalState
from slashbots.shared.redis_state import RedisState

NOW = datetime(2026, 11, 26, 20, 47, 30, tzinfo=timezone.utc).timestamp()
PER_USER = MappingProxyType({"user": Budget(100, "day")})


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("text", "budget"), [
    ("50000 tokens/day", Budget(50_000, "day")),
    ("2,000,000 tokens/month", Budget(2_000_000, "month")),
    ("50_000 tokens per day", Budget(50_000, "day")),
    (" 1 token / day ", Budget(1, "day")),
])
def test_budgets_parse(text: str, budget: Budget) -> None:
    assert Budget.parse(text) == budget


@pytest.mark.parametrize("text", ["5000/day", "0 tokens/day", "50 tokens/week", "many tokens/day", 5000, None])
def test_a_bad_budget_names_the_expected_form(text: object) -> None:
    with pytest.raises(ValueError, match=r"expected a budget such as '50000 tokens/day' or '2000000 tokens/month' "
                                         r"\(calendar days and months, in UTC\), got"):
        Budget.parse(text)  # type: ignore[arg-type]


def test_periods_are_calendar_days_and_months_in_utc() -> None:
    assert period_start("day", NOW) == ("2026-11-26", datetime(2026, 11, 27, tzinfo=timezone.utc))
    assert period_start("month", NOW) == ("2026-11", datetime(2026, 12, 1, tzinfo=timezone.utc))
    december = datetime(2026, 12, 31, 23, 59, 59, tzinfo=timezone.utc).timestamp()
    assert period_start("month", december) == ("2026-12", datetime(2027, 1, 1, tzinfo=timezone.utc))
    assert period_start("day", december + 1)[0] == "2027-01-01"


def test_charges_name_each_scope_and_its_period() -> None:
    budgets = {"user": Budget(10, "day"), "channel": Budget(20, "day"), "bot": Budget(30, "month")}
    found = charges("gpt", budgets, user_id="alice", cid="messaging:general", now=NOW)
    assert [(c.scope, c.key, c.limit) for c in found] == [
        ("user", "budget:gpt:user:alice:2026-11-26", 10),
        ("channel", "budget:gpt:channel:messaging:general:2026-11-26", 20),
        ("bot", "budget:gpt:bot::2026-11", 30),
    ]
    # Kept until the period ends, and an hour after, for answers still running at midnight.
    assert found[0].ttl == pytest.approx(3 * 3600 + 12 * 60 + 30 + 3600)


def test_the_sender_is_told_which_budget_is_spent_and_when_it_renews() -> None:
    budgets = {"user": Budget(50_000, "day"), "channel": Budget(200_000, "day"), "bot": Budget(2_000_000, "month")}
    user, channel, bot = charges("gpt", budgets, user_id="alice", cid="messaging:general", now=NOW)
    assert over_budget("gpt", [user], [], NOW) == (
        "You have used your 50,000 tokens of /gpt for today. They renew at 00:00 UTC, in 3 h 12 min.")
    assert over_budget("gpt", [channel], [], NOW) == (
        "This channel has used its 200,000 tokens of /gpt for today. They renew at 00:00 UTC, in 3 h 12 min.")
    # Several spent: the one that renews last decides when asking again makes sense.
    assert over_budget("gpt", [user, bot], [channel], NOW) == (
        "/gpt has used its 2,000,000 tokens for this month, for everyone. They renew on 1 December at 00:00 UTC.")
    # Full only of what the answers running have reserved: they may yet use less.
    assert over_budget("gpt", [], [channel, user], NOW) == (
        "Your answers still running may use up the 50,000 tokens of /gpt for today. Please ask again once they "
        "have finished.")
    late = datetime(2026, 11, 26, 23, 59, 40, tzinfo=timezone.utc).timestamp()
    [user] = charges("gpt", {"user": Budget(5, "day")}, user_id="alice", cid="messaging:general", now=late)
    assert over_budget("gpt", [user], [], late).endswith("They renew at 00:00 UTC, in 1 min.")


# -- reservation and settlement, the same in one process and on Redis ---------------------------------


def reservation(n: int, reserve: int = 40, *, now: float = NOW, lapse: float = 3600.0, user: str = "alice",
                budgets: MappingProxyType = PER_USER) -> Reservation:
    return Reservation(f"gpt:m{n}", reserve, charges("gpt", budgets, user_id=user, cid="messaging:general", now=now),
                       lapse=lapse)


def settled(n: int, tokens: int, *, final: bool = True, now: float = NOW, user: str = "alice") -> Settlement:
    return Settlement(f"gpt:m{n}", tokens, final, charges("gpt", PER_USER, user_id=user, cid="messaging:general",
                                                          now=now),
                      command="gpt", user_id=user, day=period_start("day", now)[0], prompt=tokens)


@asynccontextmanager
async def state(kind: str, request: pytest.FixtureRequest) -> AsyncIterator[LocalState | RedisState]:
    if kind == "local":
        yield LocalState(10, clock=Clock())
        return
    server = request.getfixturevalue("redis_server")
    shared = RedisState(server.url, prefix="slashbots:test-app:", writes_per_second=10, timeout=0.5, metrics=Metrics())
    await shared.start()
    try:
        yield shared
    finally:
        await shared.close()


async def admit(shared: LocalState | RedisState, reserved: Reservation, limits=()) -> str:
    """The outcome; ``over_budget`` is ``held`` when only the answers running fill the budget."""
    admission = await shared.admit([f"message:{reserved.id}"], list(limits), reservation=reserved)
    if admission.outcome == "over_budget":
        assert bool(admission.spent) != bool(admission.held)  # one budget here: used up, or held
        return "over_budget" if admission.spent else "held"
    return admission.outcome


@pytest.mark.parametrize("kind", ["local", "redis"])
async def test_taken_while_the_reservations_leave_room_then_settled_at_the_real_count(kind, request) -> None:
    async with state(kind, request) as shared:
        # 100 tokens, 40 held per running answer: 0, 40 and 80 leave room; 120 does not.
        assert [await admit(shared, reservation(n)) for n in range(4)] == ["accepted"] * 3 + ["held"]
        await shared.settle(settled(0, 10))  # released, and 10 really used: 10 + 80 held
        assert await admit(shared, reservation(4)) == "accepted"  # 10 + 120 held: full again
        assert await admit(shared, reservation(5)) == "held"
        for n in (1, 2, 4):
            await shared.settle(settled(n, 30))  # 100 used: spent, with nothing running
        assert await admit(shared, reservation(6)) == "over_budget"
        assert await admit(shared, reservation(7, user="bob")) == "accepted"  # per user


@pytest.mark.parametrize("kind", ["local", "redis"])
async def test_a_flood_overshoots_by_at_most_the_answers_already_running(kind, request) -> None:
    async with state(kind, request) as shared:
        outcomes = [await admit(shared, reservation(n, reserve=30)) for n in range(50)]
        taken = [n for n, outcome in enumerate(outcomes) if outcome == "accepted"]
        assert set(outcomes[4:]) == {"held"}
        assert taken == [0, 1, 2, 3]  # 0, 30, 60 and 90 held were under 100
        for n in taken:
            await shared.settle(settled(n, 45))  # each cost more than it reserved
        # 180 used: over by what the four running answers cost beyond the room they found.
        assert await admit(shared, reservation(99)) == "over_budget"


@pytest.mark.parametrize("kind", ["local", "redis"])
async def test_a_run_handed_on_keeps_the_reservation_and_its_tokens_count(kind, request) -> None:
    async with state(kind, request) as shared:
        assert await admit(shared, reservation(0, reserve=80)) == "accepted"
        await shared.settle(settled(0, 30, final=False))  # handed to another instance: 30 used, 80 still held
        assert await admit(shared, reservation(1, reserve=60)) == "held"
        await shared.settle(settled(0, 20))  # the rerun finishes: 50 used, nothing held
        assert await admit(shared, reservation(1, reserve=60)) == "accepted"
        await shared.settle(settled(1, 60))  # 110 used
        assert await admit(shared, reservation(2)) == "over_budget"


@pytest.mark.parametrize("kind", ["local", "redis"])
async def test_over_budget_charges_nothing_else(kind, request) -> None:
    limit = [("gpt:user:alice", Rate.parse("3/minute"))]
    async with state(kind, request) as shared:
        assert await admit(shared, reservation(0, reserve=100), limit) == "accepted"
        assert await admit(shared, reservation(1), limit) == "held"
        assert await admit(shared, reservation(2), limit) == "held"
        await shared.settle(settled(0, 0))
        # The refusals took nothing from the rate limit: two of three left.
        assert [await admit(shared, reservation(n, reserve=1), limit) for n in (3, 4, 5)] == [
            "accepted", "accepted", "rate_limited"]


async def test_a_new_day_brings_a_new_budget_and_late_answers_count_on_the_day_they_were_asked() -> None:
    clock = Clock(datetime(2026, 11, 26, 23, 59, 0, tzinfo=timezone.utc).timestamp())
    shared = LocalState(10, clock=clock)
    assert await admit(shared, reservation(0, reserve=100, now=clock.now)) == "accepted"
    clock.now += 120  # past midnight, the answer still running
    assert await admit(shared, reservation(1, reserve=100, now=clock.now)) == "accepted"  # today's budget
    await shared.settle(settled(0, 150, now=clock.now))
    await shared.settle(settled(1, 10, now=clock.now))
    assert await admit(shared, reservation(2, now=clock.now)) == "accepted"  # 10 used today
    clock.now -= 120
    assert await admit(shared, reservation(3, now=clock.now)) == "over_budget"  # yesterday got the 150


async def test_an_unsettled_reservation_lapses() -> None:
    clock = Clock()
    shared = LocalState(10, clock=clock)
    assert await admit(shared, reservation(0, reserve=100)) == "accepted"
    assert await admit(shared, reservation(1)) == "held"
    clock.now += 3600  # its instance died and no other finished the answer
    assert await admit(shared, reservation(1)) == "accepted"


# -- Redis only ---------------------------------------------------------------------------------------


async def test_redis_reservations_lapse_on_redis_time(redis_server, request) -> None:
    async with state("redis", request) as shared:
        assert await admit(shared, reservation(0, reserve=100, lapse=0.3)) == "accepted"
        assert await admit(shared, reservation(1)) == "held"
        deadline = time.monotonic() + 5
        while await admit(shared, reservation(1)) != "accepted":
            assert time.monotonic() < deadline, "the reservation never lapsed"
        held = redis_server.client().hgetall("slashbots:test-app:budget:gpt:user:alice:2026-11-26")
        assert b"r:gpt:m0" not in held and held[b"reserved"] == b"40"


async def test_the_budget_check_is_part_of_the_one_admit_round_trip(redis_server, request) -> None:
    client = redis_server.client()
    budgets = MappingProxyType({"user": Budget(100, "day"), "channel": Budget(1000, "day"), "bot": Budget(9, "month")})
    async with state("redis", request) as shared:
        await shared.admit(["message:warm-up"], [])  # loads the script
        sent: list[str] = []
        execute = shared.client.execute_command

        async def counted(*args, **options):
            sent.append(args[0])
            return await execute(*args, **options)

        shared.client.execute_command = counted  # type: ignore[method-assign]
        admitted = await shared.admit(["message:m1", "webhook:w1"], [("gpt:user:alice", Rate.parse("5/minute"))],
                                      job=Job("gpt:m1", "{}"), reservation=reservation(1, budgets=budgets))
        assert admitted.outcome == "accepted" and sent == ["EVALSHA"]  # claims, limit, budgets, job: one round trip
        # What a settlement will need is recorded with it: which budgets, and for how long.
        prefix = "slashbots:test-app:"
        assert client.get(prefix + "reservation:gpt:m1").decode().split("\n") == [
            prefix + "budget:gpt:user:alice:2026-11-26", prefix + "budget:gpt:channel:messaging:general:2026-11-26",
            prefix + "budget:gpt:bot::2026-11"]
        assert client.pttl(prefix + "budget:gpt:bot::2026-11") > 3 * 86400 * 1000  # until December, and an hour
        assert (await admit(shared, reservation(2, budgets=budgets))) == "held"  # 9 a month, 40 held


async def test_settled_tokens_are_counted_per_day_for_slashbots_usage(redis_server, request) -> None:
    async with state("redis", request) as shared:
        assert await admit(shared, reservation(0)) == "accepted"
        await shared.settle(Settlement("gpt:m0", 30, True, (), command="gpt", user_id="alice", day="2026-11-26",
                                       prompt=20, completion=10, estimated=10))
    client = redis_server.client()
    key = "slashbots:test-app:usage:2026-11-26"
    assert client.hgetall(key) == {b"gpt|alice|prompt": b"20", b"gpt|alice|completion": b"10",
                                   b"gpt|alice|estimated": b"10"}
    assert 35 * 86400 * 1000 < client.pttl(key) <= 36 * 86400 * 1000
    assert client.hget("slashbots:test-app:budget:gpt:user:alice:2026-11-26", "used") == b"30"


async def test_a_settlement_whose_reservation_is_gone_counts_in_todays_budgets(redis_server, request) -> None:
    async with state("redis", request) as shared:
        assert await admit(shared, reservation(0)) == "accepted"
        redis_server.client().flushall()  # a Redis restarted without persistence
        await shared.settle(settled(0, 120))
        assert await admit(shared, reservation(1)) == "over_budget"
        assert redis_server.client().pttl("slashbots:test-app:budget:gpt:user:alice:2026-11-26") > 0


async def test_while_redis_is_away_budgets_are_kept_here_and_settled_here(redis_server, request) -> None:
    async with state("redis", request) as shared:
        redis_server.stop()
        taken = await shared.admit(["message:m0"], [], reservation=reservation(0, reserve=100))
        assert (taken.outcome, taken.shared) == ("accepted", False)
        assert await admit(shared, reservation(1)) == "held"  # this instance's own ledger
        await shared.settle(settled(0, 5))  # released here, where it was reserved
        assert await admit(shared, reservation(1)) == "accepted"
