"""Whether a bot takes a command: every rule, in order, decided in the ack with no network call but Redis.

1. Who asks, and where (``allow:`` and ``deny:``, core/access.py), from what Stream sent alone:
   a refused user costs no Redis call and no tokens.
2. This instance's own state, which the caller knows and passes in: restarting, busy.
3. One atomic step of the shared state: dedupe, the token budgets (core/budgets.py: a
   reservation for the answer), the rate limits, the claim and the durable job.

Each refusal comes with the words its sender reads, and is counted on /metrics by reason.
The command webhook calls ``Gate.admit`` with plain values, and so can any other way in.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from slashbots.access import Asker
from slashbots.budgets import DEFAULT_RESERVE, Reservation, charges, over_budget
from slashbots.config import Bot
from slashbots.metrics import Metrics
from slashbots.shared import Job, SharedState

log = logging.getLogger("slashbots.admission")

WHOM = {"user": "per person", "channel": "in this channel", "bot": "in all"}


@dataclass(frozen=True)
class Decision:
    """What became of a command: ``accepted``, ``duplicate``, or a refusal with the words for its sender."""

    outcome: str  # accepted, duplicate, or a refusal: denied, restarting, busy, over_budget, rate_limited
    text: str | None = None  # for the sender, when refused
    shared: bool = True  # False when Redis was away and this instance decided alone
    wait: float = 0.0  # rate_limited: seconds until it would be taken


class Gate:
    """Admits commands for every bot: one per server, shared by the ways commands come in."""

    def __init__(self, shared: SharedState, *, reserves: Mapping[str, int] | None = None,
                 metrics: Metrics | None = None, clock: Callable[[], float] = time.time) -> None:
        self.shared = shared
        self.reserves = reserves or {}  # command -> tokens a budget holds per running answer
        self.metrics = metrics
        self.clock = clock

    async def admit(self, bot: Bot, asker: Asker, *, claims: Sequence[str], job_id: str, payload: str | None = None,
                    refusal: tuple[str, str] | None = None) -> Decision:
        """Decide on one command; accepted, it holds its claims, its limits and its reservation.

        ``job_id`` names the answer (its reservation is settled under it); with ``payload``
        the job is recorded durably, for another instance to run if this one dies.
        ``refusal``, (outcome, words), is this instance's own reason to turn it away (restarting,
        busy): a duplicate is still told apart from it, so a redelivery gets no error.
        """
        words = bot.access.refusal(bot.command, asker)
        if words is not None:
            return self._refused(bot, asker, "denied", words)
        now = self.clock()
        reservation = None
        if bot.budgets:
            reservation = Reservation(job_id, self.reserves.get(bot.command, DEFAULT_RESERVE),
                                      charges(bot.command, bot.budgets, user_id=asker.user_id, cid=asker.cid, now=now))
        scopes = {"user": asker.user_id, "channel": asker.cid, "bot": ""}
        rates = bot.rate_limits or {}
        limits = [(f"{bot.command}:{scope}:{scopes[scope]}", rate) for scope, rate in rates.items()]
        job = Job(job_id, payload) if payload is not None else None
        admission = await self.shared.admit(claims, limits, take=refusal is None, job=job, reservation=reservation)
        if admission.outcome == "duplicate":
            return Decision("duplicate", shared=admission.shared)
        if refusal is not None:
            return self._refused(bot, asker, *refusal)
        if admission.outcome == "over_budget" and reservation is not None:
            spent = [charge for charge in reservation.charges if charge.key in admission.spent]
            held = [charge for charge in reservation.charges if charge.key in admission.held]
            return self._refused(bot, asker, "over_budget", over_budget(bot.command, spent, held, now))
        if admission.outcome == "rate_limited":
            rules = ", ".join(f"{rate.text} {WHOM[scope]}" for scope, rate in rates.items())
            return self._refused(bot, asker, "rate_limited", f"Slow down: /{bot.command} takes {rules}. "
                                                             f"Try again in {max(math.ceil(admission.wait), 1)} seconds.",
                                 wait=admission.wait)
        return Decision("accepted", shared=admission.shared)

    def _refused(self, bot: Bot, asker: Asker, outcome: str, text: str, *, wait: float = 0.0) -> Decision:
        log.info("/%s from %s in %s not taken: %s", bot.command, asker.user_id, asker.cid, outcome)
        if self.metrics is not None:
            self.metrics.refusals.labels(bot.command, outcome).inc()
        return Decision(outcome, text, wait=wait)
