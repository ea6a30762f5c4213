"""Reply jobs: run a bot's provider for one command and relay its answer into the channel.

Jobs run in the background after the webhook has answered Stream. The set of running
jobs holds strong references (the event loop keeps only weak ones) and is drained on
shutdown, so no accepted command ends without a final message. With Redis, jobs are
durable (slashbots/leases.py): leased, run again elsewhere if this instance dies, and
handed over rather than cut short on shutdown.

A reply of a bot with ``stop: true`` can be stopped by the stop button (slashbots/stops.py):
its provider's iterator is closed at once (the model request and any running tool are
cancelled with it), and its messages keep what they show (relay.Relay.halt). With Redis
the stop reaches the instance running the reply, and a stopped reply is never run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Mapping

from slashbots import logs
from slashbots.budgets import settlement
from slashbots.capacity import LoopLag
from slashbots.history import history_reader
from slashbots.leases import Lease, LeaseKeeper, reply_message_id
from slashbots.metrics import Metrics
from slashbots.provider import CommandRequest, Provider, ProviderError, Refusal, ToolUse
from slashbots.relay import NotOurs, Relay
from slashbots.shared import Orphan, SharedState
from slashbots.shared.local import LocalState
from slashbots.stream import StreamError, StreamGateway
from slashbots.tool_lines import tool_line
from slashbots.usage import Usage

if TYPE_CHECKING:
    from slashbots.threads import ThreadMemory
    from slashbots.tool import Tool

log = logging.getLogger("slashbots.replies")

DEFAULT_MAX_MESSAGE_LENGTH = 5000
LAST_RESORT_APOLOGY = "Sorry, {name} could not answer. The details are in the server log."
SHUTDOWN_NOTE = "The server shut down before the answer was finished. Please ask again."
MAX_ATTEMPTS = 3  # runs of one reply before it is ended with TOO_MANY_ATTEMPTS instead of run again
TOO_MANY_ATTEMPTS = "The answer was interrupted several times (its server kept stopping). Please ask again."
QUIET_OUTCOMES = frozenset({"handed_back", "lease_lost", "duplicate"})  # ended here without a word, on purpose


def job_id(request: CommandRequest) -> str:
    """The reply job's name: one per bot and message (two bots mentioned in one message make two)."""
    return f"{request.bot.command}:{request.message_id}"


@dataclass
class Job:
    """One reply job running here: its request, its lease, and (once made) its relay."""

    request: CommandRequest
    lease: Lease
    relay: Relay | None = None
    quiet: str | None = None  # why it is being stopped without a word: handed_back, lease_lost, duplicate
    answering: bool = False  # its provider was asked: from now until its final text, a stop cuts it short
    stopped: bool = False  # a user pressed stop: its messages keep what they show

    def shows(self, message_id: str) -> bool:
        """Whether ``message_id`` is this reply's question or one of its messages (a stop may name either)."""
        return message_id == self.request.message_id or (
            self.relay is not None and message_id in self.relay.ids.values())


class Replies:
    """Starts, tracks and drains reply jobs; with Redis, keeps their leases and takes over others'."""

    def __init__(
        self,
        gateway: StreamGateway,
        providers: Mapping[str, Provider],
        hook: Any,
        *,
        max_in_flight: int = 500,
        max_lag: float = 0.25,
        shared: SharedState | None = None,
        lease_seconds: float = 5.0,
        rebuild: Callable[[str], CommandRequest | None] | None = None,
        metrics: Metrics | None = None,
        tools: Mapping[str, tuple[Tool, ...]] | None = None,
        clock: Callable[[], float] = time.time,
        threads: ThreadMemory | None = None,
    ) -> None:
        self.metrics = metrics
        self.clock = clock  # wall time: which day's and month's budgets an answer's tokens go to
        self.gateway = gateway
        self.providers = providers
        self.tools = tools or {}  # command -> the tools its bot may call
        self.hook = hook
        self.max_in_flight = max_in_flight
        self.max_lag = max_lag
        self.lag = LoopLag()  # its watch() runs for the app's lifetime (see core/app.py)
        # Stream's update budget, shared by every reply, and with Redis by every instance; and
        # the jobs' leases, which make replies durable when the state is shared.
        self.shared = shared or LocalState(writes_per_second=15.0)
        self.leases = LeaseKeeper(self.shared, lease_seconds)
        self.shared.on_late_job = self.adopt
        self.rebuild = rebuild  # a stored job's payload -> its request again (conversation_requests.rebuild_request)
        self.threads = threads  # where the threads bots with `threads` answered in are remembered
        self.shared.on_stop(self._stopped_elsewhere)
        self.accepting = True
        # Stream's default; channel types that set less are filled in by the start-up sync.
        self.max_message_length: dict[str, int] = {}
        self.running: dict[asyncio.Task[None], Job] = {}
        self._chores: set[asyncio.Task[None]] = set()  # small background writes, held until done
        self.finished = 0

    @property
    def full(self) -> bool:
        """No room for another reply: too many running, or the event loop already running late."""
        return len(self.running) >= self.max_in_flight or self.lag.seconds > self.max_lag

    def submit(self, request: CommandRequest, *, durable: bool = False, attempt: int = 1,
               earlier_messages: int = 0) -> None:
        """Start the reply in the background and return at once (called from the webhook's ack).

        ``durable``: its job was recorded in Redis, leased to this instance; ``attempt`` > 1 runs
        again a job claimed from another instance, whose earlier runs posted ``earlier_messages``.
        """
        request = dataclasses.replace(request, _history=history_reader(self.gateway, request),
                                      tools=self.tools.get(request.bot.command, ()))
        lease = Lease(self.leases, job_id(request), durable=durable, attempt=attempt, earlier_messages=earlier_messages)
        if durable:
            self.leases.hold(lease.job_id)
        job = Job(request, lease)
        task = asyncio.create_task(self.run(job), name=f"reply {request.message_id}")
        self.running[task] = job
        task.add_done_callback(self._done)
        if self.metrics is not None:
            self.metrics.replies_in_flight.set(len(self.running))

    def _done(self, task: asyncio.Task[None]) -> None:
        job = self.running.pop(task, None)
        if job is not None and job.quiet is None:
            self.leases.drop(job.lease.job_id)
        if self.metrics is not None:
            self.metrics.replies_in_flight.set(len(self.running))

    # -- leases: with Redis, replies outlive this instance ----------------------------------------

    async def keep_leases(self) -> None:
        """Renew the leases of replies running here and take over replies whose instance is gone."""
        if not self.shared.durable:
            return
        await self.leases.keep(self._lost, self._resume, self._room)

    def adopt(self, job_id: str) -> None:
        """An ack that decided alone (Redis answered after its deadline) recorded the job here after all:
        hold its lease, so that no other instance claims it and runs it a second time."""
        for job in self.running.values():
            if job.lease.job_id == job_id and job.quiet is None:
                job.lease.durable = True
                self.leases.hold(job_id)
                return
        self._chore(self.shared.finish(job_id))  # answered already: only the record is left

    def _room(self) -> int:
        if not self.accepting or self.lag.seconds > self.max_lag:
            return 0
        return self.max_in_flight - len(self.running)

    def _lost(self, job_ids: set[str]) -> None:
        for task, job in list(self.running.items()):
            # Not held any more: its final text landed while the renewal was on its way, and the
            # job it no longer finds is the one this instance has just finished (see _close).
            if job.lease.job_id in job_ids and job.lease.job_id in self.leases.held:
                log.warning("reply to %s is no longer ours (another instance took it over, or it was stopped); "
                            "stopping here without another write", job.lease.job_id)
                self._stop_quietly(task, job, "lease_lost")

    def _stop_quietly(self, task: asyncio.Task[None], job: Job, why: str) -> None:
        if job.quiet is None:
            job.quiet = why
            self.leases.drop(job.lease.job_id)
            task.cancel()

    def _resume(self, orphans: list[Orphan]) -> None:
        for orphan in orphans:
            if orphan.stopped:  # a user stopped it: never run again (its message keeps what it showed)
                self.leases.drop(orphan.id)
                self._end_stopped_orphan(orphan)
                continue
            request = self.rebuild(orphan.payload) if self.rebuild is not None else None
            if request is None:
                log.error("job %s cannot be run again here (its bot is not in this bots.yaml); dropping it", orphan.id)
                self.leases.drop(orphan.id)
                self._chore(self.shared.finish(orphan.id))
                continue
            log.info("taking over the reply to %s (attempt %d)", orphan.id, orphan.attempt)
            if self.metrics is not None:
                self.metrics.replies_taken_over.inc()
            self.submit(request, durable=True, attempt=orphan.attempt, earlier_messages=orphan.messages)

    def _chore(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    # -- the stop button ------------------------------------------------------------------------------

    def stop(self, cid: str, commands: set[str], message_id: str | None = None) -> list[str]:
        """Stop the replies running here in ``cid`` of the bots ``commands`` (only the one showing
        ``message_id``, if given); returns their job ids."""
        stopped = []
        for task, job in list(self.running.items()):
            request = job.request
            if request.cid == cid and request.bot.command in commands and (message_id is None or job.shows(message_id)):
                if self._halt(task, job):
                    stopped.append(job.lease.job_id)
        return stopped

    def _stopped_elsewhere(self, job_ids: set[str]) -> None:
        """Shared state says these jobs were stopped (by a stop that arrived at any instance)."""
        for task, job in list(self.running.items()):
            if job.lease.job_id in job_ids:
                self._halt(task, job)

    def _halt(self, task: asyncio.Task[None], job: Job) -> bool:
        if job.stopped or job.quiet is not None or not job.answering:
            return False  # already stopping, stopping quietly (handed over), or nothing on screen yet to stop
        if job.relay is not None and not job.relay.halt():
            return False  # its final text is being written
        job.stopped = True
        task.cancel()  # closes the provider's iterator, and with it the model request
        log.info("reply to %s stopped by the stop button", job.lease.job_id)
        return True

    def _end_stopped_orphan(self, orphan: Orphan) -> None:
        """A stopped reply whose instance died before ending it: end its messages as they stand, never rerun it."""
        request = self.rebuild(orphan.payload) if self.rebuild is not None else None

        async def end() -> None:
            if request is not None:
                bot_id = request.bot.identity.id
                # A one-message reply records no count (leases.py): its first message is every run's.
                for index in range(max(orphan.messages, 1)):
                    try:
                        await self.gateway.update_message(reply_message_id(orphan.id, index), bot_id,
                                                          {"generating": False})
                    except StreamError as exc:
                        log.warning("could not end message %d of the stopped reply to %s: %s", index, orphan.id, exc)
                with contextlib.suppress(StreamError):
                    await self.gateway.send_event(request.cid, bot_id, {
                        "type": "ai_indicator.clear", "message_id": reply_message_id(orphan.id, 0)})
            await self.shared.finish(orphan.id)

        self._chore(end())

    # -- shutdown ------------------------------------------------------------------------------------

    async def drain(self, finish_by: float, give_up_at: float) -> None:
        """Let running replies finish until ``finish_by``, then hand them over or end them saying so.

        Both are ``time.monotonic()`` deadlines. With Redis, a reply still running is handed
        back (its lease released at once) for another instance to run whole. Otherwise it is
        ended with a note, and ending honestly means writing to Stream, which may be failing
        too: whatever has not ended by ``give_up_at`` is abandoned and named in the log, so
        shutdown keeps its deadline whatever Stream does.
        """
        self.accepting = False
        if not self.running:
            return
        log.info("waiting up to %.1fs for %d running replies", max(finish_by - time.monotonic(), 0), len(self.running))
        _, pending = await asyncio.wait(set(self.running), timeout=max(finish_by - time.monotonic(), 0))
        if not pending:
            return
        handed = {task: self.running[task] for task in pending if task in self.running and self.running[task].lease.durable}
        if handed:
            await self.shared.release([job.lease.job_id for job in handed.values()])
            log.info("handed %d running replies back for another instance to finish", len(handed))
            for task, job in handed.items():
                self._stop_quietly(task, job, "handed_back")
        for task in pending:
            if task not in handed:
                task.cancel()  # each writes its "interrupted" note (Replies.run)
        _, stuck = await asyncio.wait(pending, timeout=max(give_up_at - time.monotonic(), 0))
        if not stuck:
            return
        described = []
        for task in stuck:
            job = self.running.get(task)
            task.cancel()  # again: this time it interrupts the note's own writes
            if job is not None:
                ids = ", ".join(sorted(job.relay.ids.values())) if job.relay and job.relay.ids else "none posted"
                described.append(f"/{job.request.bot.command} in {job.request.cid} "
                                 f"(command {job.request.message_id}, reply {ids})")
        log.error("%d replies could not be ended honestly before shutdown (Stream did not take their last write); "
                  "they may still show as generating: %s", len(stuck), "; ".join(sorted(described)))
        if self.metrics is not None:
            self.metrics.replies_abandoned.inc(len(stuck))
        await asyncio.wait(stuck, timeout=0.5)  # let the cancellations unwind; nothing in them waits on the network

    # -- one reply ---------------------------------------------------------------------------------

    async def run(self, job: Job) -> None:
        try:
            await self._answer(job)
        finally:
            await self._settle(job)

    async def _settle(self, job: Job) -> None:
        """Count the tokens this run used: on /metrics, and against the bot's budgets, releasing the
        reservation unless the answer goes on elsewhere (handed back, or taken over)."""
        request = job.request
        usage, bot = request._usage, request.bot
        if self.metrics is not None:
            _count_tokens(self.metrics, bot.command, usage)
        if not usage.total and not bot.budgets:
            return  # nothing to count, nothing reserved: no round trip
        await self.shared.settle(settlement(
            job.lease.job_id, bot.command, bot.budgets, user_id=request.user_id, cid=request.cid, usage=usage,
            final=job.quiet in (None, "duplicate"), now=self.clock()))

    async def _answer(self, job: Job) -> None:
        request, lease = job.request, job.lease
        logs.request_id.set(request.request_id)  # this task's context: every line it logs carries the id
        bot = request.bot
        started = time.monotonic()
        relay = job.relay = Relay(
            self.gateway,
            request.cid,
            bot.identity.id,
            parent_id=request.parent_id,
            answer_to=request.message_id,
            streaming=bot.streaming,
            interval=bot.update_interval_ms / 1000,
            max_length=self.max_message_length.get(request.channel_type, DEFAULT_MAX_MESSAGE_LENGTH),
            pacing=self.shared,
            ownership=lease,
        )
        task = asyncio.current_task()
        assert task is not None
        relay.on_lost = lambda lost: self._stop_quietly(task, job, "duplicate" if lost.reason == "duplicate"
                                                        else "lease_lost")
        if bot.stop and lease.durable:
            await self.shared.track(lease.job_id, request.cid)  # before anything shows: a stop can find it
        if bot.threads and self.threads is not None:
            self._chore(self.threads.answering(request, lease.message_id(0)))
        if lease.rerun and await self._already_answered(job):
            return
        relay.open()
        outcome = "ok"
        job.answering = True
        try:
            if lease.attempt > MAX_ATTEMPTS:
                raise ProviderError(TOO_MANY_ATTEMPTS)
            async for piece in self.providers[bot.command].respond(request):
                if isinstance(piece, ToolUse):
                    relay.tool_use(tool_line(piece) if piece.show else None)
                elif isinstance(piece, str):
                    relay.append(piece)
                else:
                    raise TypeError(f"provider yielded {type(piece).__name__}, expected str or ToolUse")
            if not relay.answered:
                relay.append("(The bot had nothing to say.)")
        except Refusal as refusal:
            outcome = "refused"
            relay.append(_after(relay.text, refusal.text))
        except ProviderError as error:
            outcome = "failed"
            relay.append(_interrupted(relay.text, error.text))
        except asyncio.CancelledError:
            if job.stopped:
                # The stop button: the messages keep what they show (the relay writes no more text).
                await self._close(job, relay, failed=False)
                self._record(request, "stopped", started, relay)
                return
            if job.quiet is not None:
                relay.abandon()
                self._record(request, job.quiet, started, relay)
                return  # stopped on purpose: another instance has it, or it was someone else's all along
            outcome = "interrupted"
            relay.append(_interrupted(relay.text, SHUTDOWN_NOTE))
            await self._close(job, relay, failed=True)
            self._record(request, outcome, started, relay)
            raise
        except Exception as error:  # any provider bug must still end in a message
            outcome = "crashed"
            log.exception("/%s provider %r failed for message %s", bot.command, bot.provider, request.message_id)
            relay.append(_interrupted(relay.text, self._apology(request, error)))
        if await self._close(job, relay, failed=outcome in ("failed", "crashed")):
            self._record(request, outcome, started, relay)

    async def _close(self, job: Job, relay: Relay, *, failed: bool) -> bool:
        """Write the final text and forget the job; False if the reply turned out not to be ours."""
        try:
            await relay.close(failed=failed)
        except NotOurs as lost:
            job.quiet = job.quiet or ("duplicate" if lost.reason == "duplicate" else "lease_lost")
            self._record(job.request, job.quiet, time.monotonic(), relay)
            return False
        if relay.unfinished and self.metrics is not None:
            self.metrics.replies_left_generating.inc(len(relay.unfinished))
        if job.lease.durable:
            self.leases.drop(job.lease.job_id)  # nothing more to write: a renewal need not find it any more
            await self.shared.finish(job.lease.job_id)
        return True

    async def _already_answered(self, job: Job) -> bool:
        """A rerun whose first message holds a final text: the earlier run finished but could not say so."""
        first = await self.gateway.message(job.lease.message_id(0))
        if first is None or first.get("generating"):
            return False
        log.info("the reply to %s was already complete; nothing to run again", job.lease.job_id)
        await self.shared.finish(job.lease.job_id)
        return True

    def _record(self, request: CommandRequest, outcome: str, started: float, relay: Relay) -> None:
        """The one log line per command, and its metrics."""
        self.finished += 1
        elapsed = time.monotonic() - started
        command = request.bot.command
        tokens = request._usage.total
        log.info(
            "/%s in %s for %s: %s, %d chars in %d message(s), %d writes, %d tokens, %.2fs",
            command, request.cid, request.user_id, outcome, len(relay.text), len(relay.ids), relay.writes, tokens,
            elapsed,
            extra={"fields": {"command": command, "cid": request.cid, "user_id": request.user_id, "outcome": outcome,
                              "chars": len(relay.text), "messages": len(relay.ids), "writes": relay.writes,
                              "tokens": tokens, "seconds": round(elapsed, 3)}},
        )
        if self.metrics is None:
            return
        if outcome in QUIET_OUTCOMES:
            if outcome == "duplicate":
                self.metrics.duplicate_replies.labels(command).inc()
            return
        self.metrics.reply_seconds.labels(command, outcome).observe(elapsed)
        if relay.first_text_at is not None:
            self.metrics.first_text_seconds.labels(command).observe(relay.first_text_at - started)
        if outcome not in ("ok", "stopped"):
            self.metrics.provider_errors.labels(command, outcome).inc()

    def _apology(self, request: CommandRequest, error: BaseException) -> str:
        try:
            text = self.hook.error_reply(request=request, error=error)
        except Exception:  # a broken hook must not cost the user their final message
            log.exception("an error_reply hook failed")
            text = None
        # The words come from plugins (the default is plugins/default_error_reply.py); this is
        # for when they fail or a deployment has unregistered them all.
        return str(text) if text else LAST_RESORT_APOLOGY.format(name=request.bot.identity.name)


def _count_tokens(metrics: Metrics, command: str, usage: Usage) -> None:
    for kind, total, estimated in (("prompt", usage.prompt, usage.estimated_prompt),
                                   ("completion", usage.completion, usage.estimated_completion)):
        if total > estimated:
            metrics.tokens.labels(command, kind, "reported").inc(total - estimated)
        if estimated:
            metrics.tokens.labels(command, kind, "estimated").inc(estimated)


def _after(text: str, addition: str) -> str:
    return f"\n\n{addition}" if text.strip() else addition


def _interrupted(text: str, reason: str) -> str:
    return f"\n\n⚠️ Answer interrupted: {reason}" if text.strip() else f"⚠️ {reason}"
