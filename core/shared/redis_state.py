"""Shared state on Redis: every instance agrees on claims, limits, token budgets and Stream's write pacing.

Each decision is one Lua script (admit.lua, settle.lua, write_slot.lua): one round trip, atomic, timed
by Redis's own clock. A Redis call in the webhook's ack gets ``timeout`` (default 50 ms)
in all: redis-py's own retries would turn a hung Redis into seconds (its ``from_url``
client, used here, makes none). When Redis fails or is slow, this instance decides with
its own ``LocalState`` instead: the ack still answers in time, limits become per instance
and a command delivered to two instances may be answered by both, until Redis is back.
A circuit breaker stops trying for a few seconds after repeated failures, so a hung
Redis costs one deadline, not one per command. An outage is logged once, when it starts,
and once when it ends.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import secrets
import socket
import time
from importlib.resources import files
from typing import Any, Awaitable, Callable, Collection, Sequence, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as redis
from redis.exceptions import RedisError

from slashbots.budgets import Reservation, Settlement
from slashbots.capacity import MAX_BACKLOG
from slashbots.metrics import Metrics
from slashbots.ratelimit import Rate
from slashbots.shared import CLAIM_TTL, JOB_TTL, Admission, Job, Orphan
from slashbots.shared.local import LocalState
from slashbots.usage import KEPT_DAYS

log = logging.getLogger("slashbots.redis")

T = TypeVar("T")
URGENT_FLUSH_EVERY = 0.1  # seconds: first and final texts, and finished jobs, go in batches, not one round trip each
BACKGROUND_TIMEOUT = 0.5  # seconds for Redis calls off the ack path
USAGE_TTL = (KEPT_DAYS + 1) * 86400.0  # seconds a day's usage counters are kept (the day itself, and KEPT_DAYS after)


class Unavailable(Exception):
    """Redis did not answer in time, or the breaker is open: decide locally."""


class Breaker:
    """Opens after ``threshold`` failures in a row; for ``cooldown`` seconds no call is tried, then one is."""

    def __init__(self, threshold: int = 3, cooldown: float = 3.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self.failures = 0
        self.open_until = 0.0
        self.down_since: float | None = None  # set while an outage is being reported

    @property
    def allows(self) -> bool:
        return self.failures < self.threshold or self.clock() >= self.open_until

    def failed(self) -> bool:
        """Count a failure; True when this one opened the breaker (an outage begins)."""
        self.failures += 1
        if self.failures >= self.threshold:
            self.open_until = self.clock() + self.cooldown
            if self.down_since is None:
                self.down_since = self.clock()
                return True
        return False

    def succeeded(self) -> float | None:
        """Count a success; the outage's length in seconds when this one ended it."""
        self.failures = 0
        if self.down_since is None:
            return None
        down, self.down_since = self.clock() - self.down_since, None
        return down


def redacted(url: str) -> str:
    """The Redis URL without its password (it never goes into a log line)."""
    parts = urlsplit(url)
    host = f"{parts.hostname}:{parts.port or 6379}" if parts.hostname else parts.path
    return f"{parts.scheme}://{host}{parts.path if parts.hostname else ''}"


class RedisState:
    durable = True

    def __init__(self, url: str, *, prefix: str, writes_per_second: float, timeout: float, lease: float = 5.0,
                 metrics: Metrics | None = None) -> None:
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease_ms = round(lease * 1000)
        self.url = url
        self.where = redacted(url)
        self.prefix = prefix
        self.timeout = timeout
        self.metrics = metrics
        self.local = LocalState(writes_per_second)
        self.breaker = Breaker()
        # No retries (from_url makes none): each call has its own deadline, and a retried
        # script could charge a limit twice. Short socket timeouts bound calls made without one.
        self.client = redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=1.0, health_check_interval=0)
        scripts = files("slashbots.shared")
        self._admit = self.client.register_script(scripts.joinpath("admit.lua").read_text())
        self._write_slot = self.client.register_script(scripts.joinpath("write_slot.lua").read_text())
        self._settle = self.client.register_script(scripts.joinpath("settle.lua").read_text())
        self._renew, self._claim, self._finish, self._release, self._stop = (
            self.client.register_script(scripts.joinpath(f"{name}.lua").read_text())
            for name in ("renew", "claim", "finish", "release", "stop"))
        self._stop_listeners: list[Callable[[set[str]], None]] = []
        self._stops_heard: asyncio.Task[None] | None = None
        self._interval_ms = max(round(1000 / writes_per_second), 1)
        self._burst_ms = round(self.local.pacer.burst * 1000)
        self._urgent = 0  # urgent update slots taken since the last flush
        self._finished: list[str] = []  # jobs finished since the last flush
        self._flusher: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Future[Any]] = set()  # calls past their deadline, still running
        # Told when an admit that missed its deadline turns out to have recorded a job as this
        # instance's (the app points it at Replies.adopt).
        self.on_late_job: Callable[[str], None] | None = None
        if metrics is not None:
            metrics.redis_up.set(1)

    async def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush(), name="redis flush")
        self._stops_heard = asyncio.create_task(self._hear_stops(), name="redis stops")

    async def close(self) -> None:
        for task in (self._flusher, self._stops_heard):
            if task is not None:
                task.cancel()
        await self.flush()  # the last finished jobs and slots, if Redis will take them
        for running in list(self._pending):
            running.cancel()
        await self.client.aclose()

    # -- decisions ------------------------------------------------------------------------------

    async def admit(self, claims: Sequence[str], limits: Sequence[tuple[str, Rate]], *, take: bool = True,
                    job: Job | None = None, reservation: Reservation | None = None) -> Admission:
        charges = reservation.charges if reservation is not None else ()
        keys = ([self.prefix + "claim:" + claim for claim in claims] + [self.prefix + "limit:" + key for key, _ in limits]
                + [self.prefix + charge.key for charge in charges])
        args: list[Any] = [round(CLAIM_TTL * 1000), 1 if take else 0, len(claims), len(limits), len(charges)]
        for _, rate in limits:
            interval = rate.period / rate.count
            args += [round(interval * 1000), round((rate.period - interval) * 1000)]
        for charge in charges:
            args += [charge.limit, round(charge.ttl * 1000)]
        if reservation is not None and charges:
            keys.append(self._reservation_key(reservation.id))
            args += [reservation.id, reservation.tokens, round(reservation.lapse * 1000)]
        if job is not None:
            keys += [self._job_key(job.id), self._leases]
            args += [job.id, job.payload, self.owner, self.lease_ms, round(JOB_TTL * 1000)]
        def answered_late(answer: Any) -> None:
            # Decided here meanwhile. Redis recorded the job as this instance's: take its lease, so
            # it is renewed here rather than claimed and run a second time by another instance.
            if job is not None and answer[0] in (b"accepted", "accepted") and self.on_late_job is not None:
                self.on_late_job(job.id)

        try:
            outcome, wait_ms, *spent = await self._call("admit", lambda: self._admit(keys=keys, args=args),
                                                        self.timeout, late=answered_late)
        except Unavailable:
            decided = self.local.admit_now(claims, limits, take=take, reservation=reservation)
            return Admission(decided.outcome, decided.wait, shared=False, spent=decided.spent, held=decided.held)
        outcome = outcome.decode() if isinstance(outcome, bytes) else outcome
        return Admission(outcome, int(wait_ms) / 1000, spent=tuple(charges[int(b) - 1].key for b in spent if int(b) > 0),
                         held=tuple(charges[-int(b) - 1].key for b in spent if int(b) < 0))

    async def settle(self, settlement: Settlement) -> None:
        if self.local.ledger.holds(settlement.id):
            self.local.ledger.settle(settlement)  # reserved here while Redis was away: settled here too
            return
        keys = [self._reservation_key(settlement.id), self.prefix + "usage:" + settlement.day,
                *(self.prefix + charge.key for charge in settlement.charges)]
        args = [settlement.id, settlement.tokens, 1 if settlement.final else 0,
                f"{settlement.command}|{settlement.user_id}|", settlement.prompt, settlement.completion,
                settlement.estimated, round(USAGE_TTL * 1000), *(round(charge.ttl * 1000) for charge in settlement.charges)]
        try:
            await self._call("settle", lambda: self._settle(keys=keys, args=args), BACKGROUND_TIMEOUT)
        except Unavailable:
            # The reservation on Redis lapses on its own; the tokens count here until Redis is back.
            self.local.ledger.settle(settlement)

    async def write_slot(self, *, urgent: bool = False) -> float:
        if urgent:
            self._urgent += 1  # counted against the budget by the next flush
            return 0.0
        try:
            wait_ms = await self._call("write_slot", lambda: self._reserve(urgent=False, count=1), BACKGROUND_TIMEOUT)
        except Unavailable:
            return self.local.pacer.reserve()
        return int(wait_ms) / 1000

    def _reserve(self, *, urgent: bool, count: int, client: Any = None) -> Awaitable[Any]:
        return self._write_slot(keys=[self.prefix + "stream-updates"],
                                args=[self._interval_ms, self._burst_ms, 1 if urgent else 0, count,
                                      round(MAX_BACKLOG * 1000)], client=client)

    async def _flush(self) -> None:
        """Every URGENT_FLUSH_EVERY: urgent update slots and finished jobs, in one pipelined round trip."""
        while True:
            await asyncio.sleep(URGENT_FLUSH_EVERY)
            await self.flush()

    async def flush(self) -> None:
        count, self._urgent = self._urgent, 0
        finished, self._finished = self._finished, []
        if not (count or finished):
            return

        async def send() -> Any:
            async with self.client.pipeline(transaction=False) as pipe:
                if count:
                    await self._reserve(urgent=True, count=count, client=pipe)  # queued, not sent
                for job_id in finished:
                    await self._finish(keys=[self._job_key(job_id), self._leases], args=[self.owner, job_id],
                                       client=pipe)
                return await pipe.execute()

        try:
            await self._call("flush", send, BACKGROUND_TIMEOUT)
        except Unavailable:
            if count:
                self.local.pacer.reserve(urgent=True, count=count)
            # Finished jobs stay leased; their leases lapse, and whoever claims one finds it final.

    # -- reply jobs and their leases -----------------------------------------------------------------

    @property
    def _leases(self) -> str:
        return self.prefix + "leases"

    def _job_key(self, job_id: str) -> str:
        return self.prefix + "job:" + job_id

    def _reservation_key(self, reservation_id: str) -> str:
        return self.prefix + "reservation:" + reservation_id

    async def renew(self, job_ids: Collection[str]) -> set[str]:
        if not job_ids:
            return set()
        ids = list(job_ids)
        keys = [self._leases, *map(self._job_key, ids)]
        try:
            lost, stopped = await self._call(
                "renew", lambda: self._renew(keys=keys, args=[self.owner, self.lease_ms, *ids]), BACKGROUND_TIMEOUT)
        except Unavailable:
            return set()  # cannot tell: keep running (a lease cannot be checked while Redis is away)
        if stopped:
            self._stopped({item.decode() for item in stopped})  # the pub/sub message may have been missed
        return {item.decode() for item in lost}

    async def claim_orphans(self, most: int) -> list[Orphan]:
        try:
            claimed = await self._call("claim", lambda: self._claim(
                keys=[self._leases], args=[self.owner, self.lease_ms, most, self.prefix + "job:"]), BACKGROUND_TIMEOUT)
        except Unavailable:
            return []
        return [Orphan(id=item[0].decode(), payload=item[1].decode(), attempt=int(item[2]), messages=int(item[3]),
                       stopped=bool(int(item[4]))) for item in claimed]

    async def owns(self, job_id: str) -> bool | None:
        try:
            owner, stopped = await self._call("owns", lambda: self.client.hmget(self._job_key(job_id), "owner", "stopped"),
                                              BACKGROUND_TIMEOUT)
        except Unavailable:
            return None
        if owner != self.owner.encode():
            return False
        if stopped == b"1":
            self._stopped({job_id})  # no more writes of text: the listener ends the reply as it stands
            return False
        return True

    async def note_messages(self, job_id: str, count: int) -> None:
        try:
            await self._call("note_messages", lambda: self.client.hset(self._job_key(job_id), "messages", count),
                             BACKGROUND_TIMEOUT)
        except Unavailable:
            pass  # a rerun may then leave a continuation message behind; the answer itself is whole

    async def finish(self, job_id: str) -> None:
        # Batched: the next flush (within URGENT_FLUSH_EVERY) finishes it, with others, in one round trip.
        # Should this instance die first, the job's lease lapses and whoever claims it finds the
        # answer already final (replies.py) and only finishes it.
        self._finished.append(job_id)

    async def release(self, job_ids: Collection[str]) -> None:
        if not job_ids:
            return
        ids = list(job_ids)
        try:
            await self._call("release", lambda: self._release(keys=[self._leases, *map(self._job_key, ids)],
                                                              args=[self.owner, *ids]), BACKGROUND_TIMEOUT)
        except Unavailable:
            pass  # the leases lapse on their own, within reply_lease_seconds

    # -- conversations: threads, refusals said aloud, stops ---------------------------------------------

    def _thread_key(self, parent_id: str) -> str:
        return self.prefix + "thread:" + parent_id

    async def remember_thread(self, parent_ids: Collection[str], command: str, ttl: float) -> None:
        def write() -> Awaitable[Any]:
            pipe = self.client.pipeline(transaction=False)
            for parent_id in parent_ids:
                pipe.sadd(self._thread_key(parent_id), command)
                pipe.pexpire(self._thread_key(parent_id), round(ttl * 1000))
            return pipe.execute()

        try:
            await self._call("remember_thread", write, BACKGROUND_TIMEOUT)
        except Unavailable:
            pass  # a follow-up there costs one read of Stream instead (slashbots/threads.py)

    async def thread_bots(self, parent_id: str) -> set[str] | None:
        try:
            members = await self._call("thread_bots", lambda: self.client.smembers(self._thread_key(parent_id)),
                                       self.timeout)
        except Unavailable:
            return None
        return {member.decode() for member in members}

    async def first_in(self, key: str, seconds: float) -> bool:
        try:
            return bool(await self._call("first_in", lambda: self.client.set(
                self.prefix + "once:" + key, "1", nx=True, px=round(seconds * 1000)), BACKGROUND_TIMEOUT))
        except Unavailable:
            return self.local.first_in_now(key, seconds)

    def _channel_key(self, cid: str) -> str:
        return self.prefix + "channel-jobs:" + cid

    async def track(self, job_id: str, cid: str) -> None:
        key = self._channel_key(cid)

        def write() -> Awaitable[Any]:
            # Scored by when it started; entries of finished jobs are skipped by stop.lua (their hash is
            # gone) and fall off here once older than any job can be.
            now = time.time()
            pipe = self.client.pipeline(transaction=False)
            pipe.zadd(key, {job_id: now})
            pipe.zremrangebyscore(key, "-inf", now - JOB_TTL)
            pipe.pexpire(key, round(JOB_TTL * 1000))
            return pipe.execute()

        try:
            await self._call("track", write, BACKGROUND_TIMEOUT)
        except Unavailable:
            pass  # a stop still reaches it if it runs on the instance the stop arrives at

    async def running_in(self, cid: str) -> list[str]:
        try:
            ids = await self._call("running_in", lambda: self.client.zrange(self._channel_key(cid), 0, -1),
                                   BACKGROUND_TIMEOUT)
        except Unavailable:
            return []
        return [item.decode() for item in ids]

    @property
    def _stops_channel(self) -> str:
        return self.prefix + "stops"

    async def stop(self, job_ids: Collection[str]) -> None:
        if not job_ids:
            return
        ids = list(job_ids)
        try:
            await self._call("stop", lambda: self._stop(keys=[self._job_key(i) for i in ids],
                                                        args=[self._stops_channel, *ids]), BACKGROUND_TIMEOUT)
        except Unavailable:
            log.warning("could not stop %d replies through Redis; only those running here stop", len(ids))

    def on_stop(self, listener: Callable[[set[str]], None]) -> None:
        self._stop_listeners.append(listener)

    def _stopped(self, job_ids: set[str]) -> None:
        for listener in self._stop_listeners:
            listener(job_ids)

    async def _hear_stops(self) -> None:
        """Forever: pass the stops any instance publishes to the listeners (pub/sub is at-most-once:
        a stop missed here is found by the next lease renewal, or a write's fence check)."""
        while True:
            try:
                async with self.client.pubsub() as pubsub:
                    await pubsub.subscribe(self._stops_channel)
                    while True:
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        if message is not None and message.get("type") == "message":
                            self._stopped(set(json.loads(message["data"])))
            except (RedisError, OSError, ValueError):
                await asyncio.sleep(1.0)  # the outage itself is reported by the calls that fail

    # -- start-up ----------------------------------------------------------------------------------

    async def first_of_many(self, key: str, wait: float) -> bool:
        lead, finished = self.prefix + "lead:" + key, self.prefix + "done:" + key
        try:
            if await self._call("lead", lambda: self.client.set(lead, "1", nx=True, px=round(wait * 2000)),
                                BACKGROUND_TIMEOUT):
                return True
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if await self._call("lead", lambda: self.client.exists(finished), BACKGROUND_TIMEOUT):
                    break
                await asyncio.sleep(0.1)
            else:
                log.warning("the instance syncing with Stream did not finish within %.0fs; syncing here too", wait)
        except Unavailable:
            pass  # without Redis, every instance syncs for itself (sync is safe to race)
        return False

    async def done(self, key: str) -> None:
        try:
            await self._call("lead", lambda: self.client.set(self.prefix + "done:" + key, "1", px=60_000),
                             BACKGROUND_TIMEOUT)
        except Unavailable:
            pass

    # -- every call -----------------------------------------------------------------------------

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]], deadline: float,
                    late: Callable[[T], None] | None = None) -> T:
        """One Redis call within ``deadline`` seconds, or Unavailable (counted, and logged once per outage).

        A call that misses its deadline is not cancelled: cancelling drops its connection, and
        under load that meant hundreds of new connections. It runs on, and ``late`` gets its
        answer if one comes. A miss counts against Redis only when this event loop was on time:
        a loop running late misses deadlines whatever Redis does, and that is no outage.
        """
        if not self.breaker.allows:
            self._count_local(operation)
            raise Unavailable
        loop = asyncio.get_running_loop()
        started = loop.time()
        running = asyncio.ensure_future(call())
        try:
            await asyncio.wait_for(asyncio.shield(running), deadline)
        except TimeoutError:
            if running.done() and not running.cancelled() and running.exception() is None:
                # The answer came in the same turn of a late loop as the deadline: it was in time.
                self._succeeded()
                return running.result()
            overdue = loop.time() - started - deadline
            if overdue < deadline:  # the deadline's own timer came on time: Redis is the slow one
                self._failed(operation, "no answer within the deadline")
            self._count_local(operation)
            self._pending.add(running)
            running.add_done_callback(functools.partial(self._answered_late, operation, late))
            raise Unavailable from None
        except (RedisError, OSError) as exc:
            self._failed(operation, f"{type(exc).__name__}: {exc}")
            self._count_local(operation)
            raise Unavailable from None
        self._succeeded()
        return running.result()

    def _answered_late(self, operation: str, late: Callable[[Any], None] | None, running: asyncio.Future[Any]) -> None:
        self._pending.discard(running)
        if running.cancelled():
            return
        if running.exception() is not None:
            self._failed(operation, f"{type(running.exception()).__name__}: {running.exception()}")
            return
        self._succeeded()
        if late is not None:
            late(running.result())

    def _failed(self, operation: str, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.redis_failures.labels(operation).inc()
        if self.breaker.failed():
            if self.metrics is not None:
                self.metrics.redis_up.set(0)
            log.warning("Redis at %s is unreachable (%s): each instance decides alone until it is back, so a "
                        "command delivered to two instances may be answered twice and limits count per instance",
                        self.where, reason)

    def _succeeded(self) -> None:
        down = self.breaker.succeeded()
        if down is not None:
            if self.metrics is not None:
                self.metrics.redis_up.set(1)
            log.warning("Redis at %s is back after %.1fs: state is shared again", self.where, down)

    def _count_local(self, operation: str) -> None:
        if self.metrics is not None:
            self.metrics.local_decisions.labels(operation).inc()
