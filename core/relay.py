"""Relays a provider's text into the channel as it is written.

One writer task per reply owns every text write, so at most one is in flight and the
latest text always wins: pieces that arrive while a write is under way are coalesced
into the next one. Writes are spaced ``interval`` apart, but the first text goes out as
soon as it arrives. Text past Stream's message length continues in a new message, cut at
a paragraph, sentence or word. Indicator events go through their own queue, best-effort,
so a slow or failing event never holds up text. While the provider's model calls tools,
the indicator says so, and each call may add a line of its own to the text.

A reply can be halted (the stop button): no text write starts after that, the write
already on its way is let finish, and the open message is then marked ``generating:
false`` without its text, so it keeps the text of the last write Stream accepted; then the
indicator is cleared. Stream's samples learnt this the hard way (chat-ai-samples PR #18):
a stop that ends with the usual final write puts back text the user stopped.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from typing import Any, Awaitable, Callable, Protocol

from slashbots.stream import StreamError, StreamGateway

log = logging.getLogger("slashbots.relay")

THINKING, GENERATING, ERROR = "AI_STATE_THINKING", "AI_STATE_GENERATING", "AI_STATE_ERROR"
EXTERNAL_SOURCES = "AI_STATE_EXTERNAL_SOURCES"  # what stream-chat-react shows while tools run


def split_point(text: str, limit: int) -> int:
    """Where to cut ``text`` so the first part fits in ``limit``: a paragraph, sentence or word end."""
    if len(text) <= limit:
        return len(text)
    window = text[:limit]
    floor = limit // 2  # never leave a stub of a message behind
    for separators in (("\n\n",), (". ", "! ", "? ", ".\n", "!\n", "?\n", "\n"), (" ", "\t")):
        cut = max(window.rfind(separator) + len(separator) for separator in separators)
        if cut > floor:
            return cut
    return limit


class Relay:
    """The bot's reply to one command: placeholder, throttled patches, continuations, final text."""

    def __init__(
        self,
        gateway: StreamGateway,
        cid: str,
        bot_id: str,
        *,
        parent_id: str | None = None,
        answer_to: str | None = None,
        streaming: bool = True,
        interval: float = 0.25,
        max_length: int = 5000,
        final_deadline: float = 60.0,
        settle: float = 7.0,
        pacing: Pacing | None = None,
        ownership: Ownership | None = None,
    ) -> None:
        self.gateway = gateway
        self.cid = cid
        self.bot_id = bot_id
        self.parent_id = parent_id
        self.answer_to = answer_to  # the message this answers, kept on each message (conversation memory pairs them)
        self.streaming = streaming
        self.interval = interval
        self.max_length = max_length
        self.final_deadline = final_deadline
        self.settle = settle
        self.pacing = pacing or _Unpaced()
        self.ownership = ownership or _OnlyHere()
        self.unfinished: list[str] = []  # messages whose final text Stream never took
        self.lost: NotOurs | None = None  # set when the reply turned out to be someone else's: it writes no more
        self.on_lost: Callable[[NotOurs], None] | None = None
        self.text = ""
        self.answered = False  # some text came from the provider (not only tool lines)
        self.cuts: list[int] = []  # where each finished message ends, in self.text
        self.ids: dict[int, str] = {}  # message number -> Stream message id, once posted
        self._sent: set[int] = set()  # message numbers this run has tried to post
        self.writes = 0
        self.first_text_at: float | None = None
        self._finals_done = 0  # messages whose final text has landed
        self._written = ""  # what the open message shows now
        self._last_patch = float("-inf")
        self._state: str | None = None
        self._using_tools = False  # since the last tool use, no text has come
        self._after_tool_line = False  # the text ends with a tool line
        self._failures = 0  # consecutive failed interim writes, for backoff
        self._timed_out = False  # a write got no answer: Stream may still apply it, late
        self._finals: dict[int, str] = {}  # message number -> the text it keeps
        self.halted = False  # stopped by a user: no more text, the messages keep what they show
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self._events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._event_sender: asyncio.Task[None] | None = None

    # -- what the reply job calls -----------------------------------------------------------------

    def open(self) -> None:
        """Start the writer; when streaming, it posts the placeholder straight away."""
        self._writer = asyncio.create_task(self._write_loop())
        self._wake.set()

    def append(self, piece: str) -> None:
        if self._after_tool_line:
            # What follows tool lines starts a paragraph of its own, however the model began it.
            piece = piece.lstrip()
            if piece:
                self._add("\n\n" + piece)
                self._after_tool_line = False
        else:
            self._add(piece)
        if piece.strip():
            self.answered = True
            self._using_tools = False

    def tool_use(self, line: str | None) -> None:
        """The model is calling a tool: say so until more text comes, and show ``line`` if given."""
        self._using_tools = True
        if line:
            self._add(("\n" if self._after_tool_line else "\n\n" if self.text.strip() else "") + line)
            self._after_tool_line = True
        self._wake.set()

    def _add(self, piece: str) -> None:
        if not piece:
            return
        self.text += piece
        start = self.cuts[-1] if self.cuts else 0
        # Trailing whitespace never forces a cut: it may come to nothing (finals are trimmed).
        while len(self.text.rstrip()) - start > self.max_length:
            start += split_point(self.text[start:], self.max_length)
            self.cuts.append(start)
        self._wake.set()

    def halt(self) -> bool:
        """Stop writing text at once (the stop button); ``close`` then ends the messages as they stand.

        False, and nothing changes, when the reply is already closing: its final text is on its way.
        """
        if self._closed.is_set():
            return False
        self.halted = True
        self._closed.set()
        self._wake.set()
        return True

    async def close(self, *, failed: bool = False) -> None:
        """Write the final text (retrying until it lands or the deadline passes) and end the indicator.

        A halted reply gets no final text: its open messages are only marked as no longer generating.
        Raises NotOurs when another instance turned out to own the reply: then nothing more is written.
        """
        self._closed.set()
        self._wake.set()
        if self._writer is None:  # halted before it began: nothing was posted
            return
        await self._writer
        if self.ownership.earlier_messages > len(self.cuts) + 1 and not self.halted:
            await self._remove_leftovers()
        if self._timed_out:
            # A write we gave up on may still land after the final one and leave old text behind.
            # Once it has had time to land or die, write the finals again.
            await asyncio.sleep(self.settle)
            if self.halted:
                await self._end_halted()
            else:
                for index, text in list(self._finals.items()):
                    await self._final(index, text)
        self._event(ERROR if failed else None)
        if self._event_sender is None:
            return
        self._events.put_nowait(None)
        try:
            await asyncio.wait_for(self._event_sender, timeout=5)
        except asyncio.TimeoutError:
            log.warning("indicator events for %s did not finish in time", self.cid)

    def abandon(self) -> None:
        """Stop writing at once, leaving the messages as they are (another instance owns the reply now)."""
        for task in (self._writer, self._event_sender):
            if task is not None:
                task.cancel()

    async def _remove_leftovers(self) -> None:
        """A rerun that came out shorter: the earlier run's extra messages would read as part of this answer."""
        for index in range(len(self.cuts) + 1, self.ownership.earlier_messages):
            await self._check_owner()
            try:
                await self.gateway.delete_message(self.ownership.message_id(index))
            except StreamError as exc:
                if exc.status != 404:  # never posted, or gone already: nothing to remove
                    log.warning("could not remove a leftover message of an earlier run in %s: %s", self.cid, exc)

    async def _check_owner(self) -> None:
        """Before each write of text: stop at once if another instance has taken the reply over, or
        if it was halted meanwhile (a stop found by the check itself halts it before it answers)."""
        if not await self.ownership.may_write():
            if self.halted:
                raise _Halted
            raise NotOurs("lease lost")
        if self.halted:
            raise _Halted

    # -- the writer -------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                if self.halted:
                    await self._end_halted()
                    return
                await self._flush()
                self._failures = 0
            except _Halted:
                self._wake.set()  # back round the loop, to end the messages as they stand
                continue
            except NotOurs as lost:
                self.lost = lost
                if self.on_lost is not None:
                    self.on_lost(lost)
                raise
            except StreamError as exc:
                # Only interim writes raise (finals retry on their own). Back off, then write whatever
                # is newest by then: the failed text is not replayed.
                self._failures += 1
                self._timed_out |= exc.status == 0
                log.log(logging.WARNING if exc.retryable else logging.ERROR, "reply in %s: %s", self.cid, exc)
                await self._pause(_backoff(exc, self._failures))
                self._wake.set()
                continue
            if self._closed.is_set() and self._finals_done == len(self.cuts) + 1:
                return
            if self.streaming and self._last_patch > float("-inf"):
                await self._pause(self.interval - (time.monotonic() - self._last_patch))

    async def _pause(self, seconds: float) -> None:
        """Sleep between writes, but wake at once when the reply is closing."""
        if seconds > 0 and not self._closed.is_set():
            try:
                await asyncio.wait_for(self._closed.wait(), timeout=seconds)
            except asyncio.TimeoutError:
                pass

    async def _flush(self) -> None:
        # Finished messages first, in order, so a continuation never lands before its predecessor.
        while self._finals_done < len(self.cuts):
            index = self._finals_done
            start = self.cuts[index - 1] if index else 0
            await self._final(index, self.text[start : self.cuts[index]].strip())
            self._finals_done += 1
            self._written = ""
        start = self.cuts[-1] if self.cuts else 0
        current = self.text[start:].strip()
        index = len(self.cuts)
        if self._closed.is_set():
            await self._final(index, current)
            self._finals_done += 1
            return
        if not self.streaming:
            return
        if index not in self.ids:
            await self._post(index, current, generating=True)
            self._event(EXTERNAL_SOURCES if self._using_tools else GENERATING if current else THINKING)
        elif current != self._written:
            first = not self._written
            # Stream counts updates per app: wait for this reply's turn (the first text never waits).
            await self._pause(await self.pacing.write_slot(urgent=first))
            if self._closed.is_set():
                return  # closing while we waited: the final text is written instead (the loop comes back)
            current = self.text[start:].strip() if index == len(self.cuts) else current
            self._event(EXTERNAL_SOURCES if self._using_tools else GENERATING)
            await self._check_owner()
            await self.gateway.update_message(self.ids[index], self.bot_id, {"text": current, "generating": True})
            self._note_patch(current)
        elif self._using_tools:
            self._event(EXTERNAL_SOURCES)
        if current and self.first_text_at is None:
            self.first_text_at = time.monotonic()

    async def _post(self, index: int, text: str, *, generating: bool) -> None:
        # The id is derived from the command (ownership.message_id), never random: a post that
        # timed out may still have landed, and an instance that reruns the reply after a crash
        # must write into the same messages. Stream refuses a second message with an id it has.
        message_id = self.ownership.message_id(index)
        fields: dict[str, Any] = {"id": message_id, "text": text, "ai_generated": True, "generating": generating}
        if self.parent_id:
            fields["parent_id"] = self.parent_id
        if self.answer_to:
            fields["answer_to"] = self.answer_to
        await self._check_owner()
        retry = index in self._sent
        self._sent.add(index)
        try:
            await self.gateway.send_message(self.cid, self.bot_id, fields)
        except StreamError as exc:
            if not exc.already_exists:
                raise
            # Ours if this run sent it before, or if this is a rerun (the earlier run's): write
            # into it. Otherwise another instance is answering the same command.
            if not (retry or self.ownership.rerun):
                raise NotOurs("duplicate") from None
            await self._check_owner()
            await self.gateway.update_message(message_id, self.bot_id, {"text": text, "generating": generating})
        self.ids[index] = message_id
        if index + 1 > self.ownership.earlier_messages:
            await self.ownership.posted(index + 1)
        self._note_patch(text)

    def _note_patch(self, text: str) -> None:
        self.writes += 1
        self._written = text
        if text:
            self._last_patch = time.monotonic()

    async def _final(self, index: int, text: str) -> None:
        """The text a message keeps: retried until it lands, since a lost final is a lost answer."""

        async def write() -> None:
            if index in self.ids:
                await self.pacing.write_slot(urgent=True)  # never waits, but counts against the app's budget
                await self._check_owner()
                await self.gateway.update_message(self.ids[index], self.bot_id, {"text": text, "generating": False})
                self._note_patch(text)
            else:
                await self._post(index, text, generating=False)
            if text and self.first_text_at is None:
                self.first_text_at = time.monotonic()
            self._finals[index] = text

        await self._until_landed(index, write, "final text")

    async def _end_halted(self) -> None:
        """A halted reply's open messages stop showing as generating; their text is left as Stream has it."""
        for index in sorted(self.ids):
            if index in self._finals:
                continue

            async def write(message_id: str = self.ids[index]) -> None:
                await self.pacing.write_slot(urgent=True)
                # No fence: the reply is ours to end, and a stopped reply is never run again elsewhere.
                await self.gateway.update_message(message_id, self.bot_id, {"generating": False})

            await self._until_landed(index, write, "end of the stopped reply")
        self._event(None)

    async def _until_landed(self, index: int, write: Callable[[], Awaitable[None]], what: str) -> None:
        """Retry ``write`` until it lands or the deadline passes (then the message may still show as generating)."""
        deadline = time.monotonic() + self.final_deadline
        attempt = 0
        while True:
            try:
                await write()
                return
            except StreamError as exc:
                attempt += 1
                self._timed_out |= exc.status == 0
                remaining = deadline - time.monotonic()
                if not exc.retryable or remaining <= 0:
                    self.unfinished.append(self.ownership.message_id(index))
                    log.error("%s of reply message %s in %s was not written, so it may still show as "
                              "generating: %s", what, self.ownership.message_id(index), self.cid, exc)
                    return
                delay = min(_backoff(exc, attempt), remaining)
                log.warning("%s in %s failed (%s); retrying in %.2fs", what, self.cid, exc, delay)
                await asyncio.sleep(delay)

    # -- indicator events -------------------------------------------------------------------------

    def _event(self, state: str | None) -> None:
        """Queue an ai_indicator change; ``None`` clears it. Repeats of the current state are dropped."""
        if state == self._state or not self.ids:
            return
        self._state = state
        if state is None:
            event = {"type": "ai_indicator.clear", "message_id": self.ids[min(self.ids)]}
        else:
            event = {"type": "ai_indicator.update", "ai_state": state, "message_id": self.ids[max(self.ids)]}
        self._events.put_nowait(event)
        if self._event_sender is None:
            # Started with the first event: a reply written in one go (most non-streaming ones) sends none.
            self._event_sender = asyncio.create_task(self._send_events())

    async def _send_events(self) -> None:
        while (event := await self._events.get()) is not None:
            # A halted reply's indicator is ours to clear, whatever the lease says now (and a stop
            # that the check itself finds halts the reply before the check answers).
            if not self.halted and not await self.ownership.may_write() and not self.halted:
                return  # another instance's reply now: its indicator is not ours to change
            try:
                await self.gateway.send_event(self.cid, self.bot_id, event)
            except StreamError as exc:
                log.info("indicator event %s in %s dropped: %s", event["type"], self.cid, exc)


class _Halted(Exception):
    """The reply was halted while the writer was about to write text: it writes none."""


class NotOurs(Exception):
    """Another instance owns this reply ("lease lost"), or is already answering the command ("duplicate")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Ownership(Protocol):
    """Whose reply this is, and the message ids it writes under (see slashbots/leases.py)."""

    rerun: bool  # an earlier run of the same reply may have posted its messages
    earlier_messages: int  # how many messages earlier runs posted

    def message_id(self, index: int) -> str: ...

    async def may_write(self) -> bool: ...

    async def posted(self, count: int) -> None:
        """The reply now spans ``count`` messages."""
        ...


class _OnlyHere:
    """A reply no other instance can run: fresh ids, always ours."""

    rerun = False
    earlier_messages = 0

    def __init__(self) -> None:
        self._ids: dict[int, str] = {}

    def message_id(self, index: int) -> str:
        return self._ids.setdefault(index, str(uuid.uuid4()))

    async def may_write(self) -> bool:
        return True

    async def posted(self, count: int) -> None:
        pass


class Pacing(Protocol):
    async def write_slot(self, *, urgent: bool = False) -> float:
        """Seconds to wait before sending one message update (Stream's budget is per app)."""
        ...


class _Unpaced:
    async def write_slot(self, *, urgent: bool = False) -> float:
        return 0.0


def _backoff(exc: StreamError, attempt: int) -> float:
    """Stream's X-RateLimit-Reset when it gave one, else exponential with jitter."""
    if exc.retry_at is not None:
        return min(max(exc.retry_at - time.time(), 0.05), 60.0)
    return min(0.25 * 2 ** (attempt - 1), 8.0) * (0.75 + random.random() / 4)
