"""Token budgets: ``budget: {per_user: 50000 tokens/day, per_channel: ..., per_bot: 2000000 tokens/month}``.

Tokens are what the bot's provider reports (prompt and completion, summed over tool rounds
and over reruns of an answer), counted per calendar day or month in UTC.

The ack cannot know what an answer will cost, so it *reserves*: a command is taken while
``used + reserved < limit`` in every budget, and then holds ``reserve`` tokens in each (the
bot's most per answer, ``tokens_per_answer`` of its provider, else ``DEFAULT_RESERVE``).
When the answer ends, *settlement* releases the reservation and adds what was really used.
So a flood gets in only while the reservations of the answers under way leave room, and the
budget is crossed by less than the last answer taken, plus what the answers running then use
beyond their reservations.

The same rules run in two places: ``Ledger`` below (one process, or any instance while
Redis is away) and ``shared/admit.lua`` with ``shared/settle.lua`` (every instance, on
Redis). A reservation that is never settled (its instance died and no other finished the
answer) lapses after ``RESERVATION_TTL``. Periods follow the clock of the instance that
takes the command; NTP keeps instances within a second of each other.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Literal, Mapping

from slashbots.usage import Usage

Period = Literal["day", "month"]
DEFAULT_RESERVE = 1000  # tokens held per running answer when its provider declares no most
RESERVATION_TTL = 3600.0  # seconds: as long as a reply job is kept (shared.JOB_TTL)
GRACE = 3600.0  # seconds a period's counts outlive it, so that answers running at midnight still settle
TIDY_EVERY = 60.0  # seconds between sweeps of the in-process ledger
SCOPES = ("user", "channel", "bot")
BUDGET = re.compile(r"\s*(\d[\d_,]*)\s*tokens?\s*(?:/|\s+per\s+|\s+a\s+)\s*(day|month)\s*")


@dataclass(frozen=True)
class Budget:
    tokens: int
    period: Period

    @classmethod
    def parse(cls, text: str) -> Budget:
        """``"50000 tokens/day"`` -> Budget(50000, "day"); raises ValueError naming the expected form."""
        match = BUDGET.fullmatch(text) if isinstance(text, str) else None
        tokens = int(re.sub(r"[_,]", "", match.group(1))) if match else 0
        if not match or tokens < 1:
            raise ValueError(f"expected a budget such as '50000 tokens/day' or '2000000 tokens/month' "
                             f"(calendar days and months, in UTC), got {text!r}")
        return cls(tokens, match.group(2))  # type: ignore[arg-type]

    @property
    def text(self) -> str:
        return f"{self.tokens:,} tokens a {self.period}"


@dataclass(frozen=True)
class Charge:
    """One budget as it applies to one command: its counter for the current period."""

    scope: str  # user, channel or bot
    key: str  # the counter, e.g. budget:gpt:user:alice:2026-11-26
    limit: int
    period: Period
    resets: datetime  # when the period ends (UTC)
    ttl: float  # seconds the counter is kept from now: to the period's end, and GRACE after


@dataclass(frozen=True)
class Reservation:
    """What admission holds for an answer: ``tokens`` from each charge, under the job's id."""

    id: str
    tokens: int
    charges: tuple[Charge, ...]
    lapse: float = RESERVATION_TTL


@dataclass(frozen=True)
class Settlement:
    """An answer's run has ended: add what it used; ``final`` also releases its reservation.

    A run stopped on purpose (handed to another instance, or taken over) is not final: the
    run that finishes the answer releases it. ``charges`` are this command's budgets now,
    counted in when the reservation is gone (it lapsed, or Redis lost it).
    """

    id: str
    tokens: int
    final: bool
    charges: tuple[Charge, ...]
    command: str
    user_id: str
    day: str  # for the per-day usage counters (``slashbots usage``)
    prompt: int = 0
    completion: int = 0
    estimated: int = 0


def period_start(period: Period, now: float) -> tuple[str, datetime]:
    """The period ``now`` falls in: its label (``2026-11-26`` or ``2026-11``) and when the next one starts."""
    return _period(period, int(now // 86400))  # UTC days are 86,400 s long: Unix time has no leap seconds


@functools.lru_cache(maxsize=8)
def _period(period: Period, day: int) -> tuple[str, datetime]:
    # Cached per day: the ack computes this for every command to a bot with a budget.
    moment = datetime.fromtimestamp(day * 86400, timezone.utc)  # that day's midnight
    if period == "day":
        return moment.strftime("%Y-%m-%d"), datetime.fromtimestamp((day + 1) * 86400, timezone.utc)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return moment.strftime("%Y-%m"), datetime(year, month, 1, tzinfo=timezone.utc)


def charges(command: str, budgets: Mapping[str, Budget], *, user_id: str, cid: str, now: float) -> tuple[Charge, ...]:
    """The counters a command by ``user_id`` in ``cid`` counts against, for the periods ``now`` is in."""
    whom = {"user": user_id, "channel": cid, "bot": ""}
    found = []
    for scope in SCOPES:
        budget = budgets.get(scope)
        if budget is None:
            continue
        label, resets = period_start(budget.period, now)
        found.append(Charge(scope, f"budget:{command}:{scope}:{whom[scope]}:{label}", budget.tokens, budget.period,
                            resets, resets.timestamp() - now + GRACE))
    return tuple(found)


def settlement(job_id: str, command: str, budgets: Mapping[str, Budget], *, user_id: str, cid: str, usage: Usage,
               final: bool, now: float) -> Settlement:
    return Settlement(
        id=job_id, tokens=usage.total, final=final,
        charges=charges(command, budgets, user_id=user_id, cid=cid, now=now),
        command=command, user_id=user_id, day=period_start("day", now)[0],
        prompt=usage.prompt, completion=usage.completion, estimated=usage.estimated,
    )


def over_budget(command: str, spent: list[Charge], held: list[Charge], now: float) -> str:
    """What the sender is told: which budget is used up, and when it starts again (the latest, if several);
    or, when only answers still running fill the budgets (``held``), to ask again once they are done."""
    if not spent:
        charge = min(held, key=lambda c: SCOPES.index(c.scope))
        running = {"user": "Your answers still running", "channel": "The answers running in this channel",
                   "bot": f"The answers /{command} is writing now"}[charge.scope]
        span = "today" if charge.period == "day" else "this month"
        return (f"{running} may use up the {charge.limit:,} tokens of /{command} for {span}. "
                "Please ask again once they have finished.")
    charge = max(spent, key=lambda c: (c.resets, -SCOPES.index(c.scope)))
    span = "today" if charge.period == "day" else "this month"
    tokens = f"{charge.limit:,} tokens"
    used = {"user": f"You have used your {tokens} of /{command} for {span}",
            "channel": f"This channel has used its {tokens} of /{command} for {span}",
            "bot": f"/{command} has used its {tokens} for {span}, for everyone"}[charge.scope]
    when = f"at 00:00 UTC, in {_duration(charge.resets.timestamp() - now)}" if charge.period == "day" else \
        f"on {charge.resets.day} {charge.resets:%B} at 00:00 UTC"
    return f"{used}. They renew {when}."


def _duration(seconds: float) -> str:
    minutes = max(int(seconds // 60), 1)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


class Ledger:
    """Budgets kept in this process: for one instance, and for any instance while Redis is away.

    The same rules as admit.lua and settle.lua (see the module's docstring).
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._used: dict[str, int] = {}
        self._held: dict[str, dict[str, tuple[int, float]]] = {}  # key -> reservation id -> (tokens, lapses at)
        self._ends: dict[str, float] = {}  # key -> when it is forgotten
        self._reservations: dict[str, tuple[str, ...]] = {}  # reservation id -> its keys
        self._tidy_at = 0.0

    def full(self, reservation: Reservation) -> tuple[list[Charge], list[Charge]]:
        """The charges with no room left for another answer: those used up, and those the answers running fill."""
        now = self.clock()
        self._forget(now)
        spent, held = [], []
        for charge in reservation.charges:
            used = self._used.get(charge.key, 0)
            if used >= charge.limit:
                spent.append(charge)
            elif used + self._held_tokens(charge.key, now) >= charge.limit:
                held.append(charge)
        return spent, held

    def reserve(self, reservation: Reservation) -> None:
        now = self.clock()
        for charge in reservation.charges:
            self._ends.setdefault(charge.key, now + charge.ttl)
            self._held.setdefault(charge.key, {})[reservation.id] = (reservation.tokens, now + reservation.lapse)
        self._reservations[reservation.id] = tuple(charge.key for charge in reservation.charges)

    def holds(self, reservation_id: str) -> bool:
        return reservation_id in self._reservations

    def settle(self, settlement: Settlement) -> None:
        now = self.clock()
        self._forget(now)
        keys = self._reservations.get(settlement.id)
        if keys is None:  # lapsed, or never made here: count the usage in today's budgets
            for charge in settlement.charges:
                self._ends.setdefault(charge.key, now + charge.ttl)
            keys = tuple(charge.key for charge in settlement.charges)
        elif settlement.final:
            del self._reservations[settlement.id]
        for key in keys:
            if key not in self._ends:
                continue  # its period is over: nothing counts there any more
            self._used[key] = self._used.get(key, 0) + settlement.tokens
            if settlement.final:
                self._held.get(key, {}).pop(settlement.id, None)

    def _held_tokens(self, key: str, now: float) -> int:
        held = self._held.get(key)
        if not held:
            return 0
        for reservation_id in [rid for rid, (_, lapses) in held.items() if lapses <= now]:
            del held[reservation_id]
        return sum(tokens for tokens, _ in held.values())

    def _forget(self, now: float) -> None:
        """Drop ended periods and lapsed reservations; once a minute, since it looks at every key."""
        if now < self._tidy_at:
            return
        self._tidy_at = now + TIDY_EVERY
        for key in [key for key, end in self._ends.items() if end <= now]:
            del self._ends[key]
            self._used.pop(key, None)
            self._held.pop(key, None)
        for key in list(self._held):
            self._held_tokens(key, now)
        for reservation_id in [rid for rid, keys in self._reservations.items()
                               if not any(rid in self._held.get(key, {}) for key in keys)]:
            del self._reservations[reservation_id]
