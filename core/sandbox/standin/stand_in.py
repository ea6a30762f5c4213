"""StreamStandIn: one Stream app, assembled from its parts, with what tests read and control."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Callable, TypeVar

from slashbots.sandbox.standin.api import StreamAPI
from slashbots.sandbox.standin.app_config import AppConfig
from slashbots.sandbox.standin.chat import Chat, oldest_first
from slashbots.sandbox.standin.command_hook import CommandHook
from slashbots.sandbox.standin.event_hooks import EventHooks
from slashbots.sandbox.standin.faults import Faults
from slashbots.sandbox.standin.feed import LiveFeed
from slashbots.sandbox.standin.rate_limits import Clock, RateLimits
from slashbots.sandbox.standin.recorder import Recorder
from slashbots.sandbox.standin.values import Json, copy_json

T = TypeVar("T")


class StreamStandIn:
    """In-memory state of one Stream app, served by `.app` (an ASGI app).

    The server runs in a thread of its own (or on the sandbox's loop); everything read here is
    a copy taken under the lock the server changes state under, so it is safe from any thread.
    """

    api_class: type[StreamAPI] = StreamAPI  # how requests are served (the benchmarks' stand-in swaps it)

    def __init__(self, api_key: str, api_secret: str, *, hook_timeout: float = 1.0, rate_limits: bool = False,
                 event_hook_timeout: float = 6.0) -> None:
        """`hook_timeout`: seconds the command hook gets (Stream gives it 1). `rate_limits`: enforce
        Stream's app limits on sending and updating messages (see `enforce_rate_limits`).
        `event_hook_timeout`: seconds each event-hook request gets (Stream gives it 6)."""
        self.api_key = api_key
        self.api_secret = api_secret
        self._lock = threading.RLock()
        self._recorder = Recorder(self._lock)
        self._feed = LiveFeed(self._lock)
        self._faults = Faults(self._lock)
        self._limits = RateLimits(self._lock, enabled=rate_limits)
        self._config = AppConfig(self._lock)
        self._command_hook = CommandHook(self._config, self._recorder, api_key=api_key, api_secret=api_secret,
                                         timeout=hook_timeout)
        self._chat = Chat(self._config, self._lock, command_hook=self._command_hook, emit=self._emit)
        self._event_hooks = EventHooks(self._config, self._recorder, members=self._chat.member_views,
                                       api_key=api_key, api_secret=api_secret, timeout=event_hook_timeout)
        self._api = self.api_class(api_key=api_key, api_secret=api_secret, config=self._config, chat=self._chat,
                                   recorder=self._recorder, faults=self._faults, limits=self._limits,
                                   on_shutdown=self._event_hooks.close)
        self.app = self._api.asgi_app()

    def _emit(self, event: Json) -> None:
        """Every change, as the event Stream sends about it: to the live feed and the event hooks."""
        self._feed.publish(event)
        self._event_hooks.dispatch(event)

    @property
    def hook_timeout(self) -> float:
        """Seconds the command hook gets (Stream gives it 1)."""
        return self._command_hook.timeout

    @hook_timeout.setter
    def hook_timeout(self, seconds: float) -> None:
        self._command_hook.timeout = seconds

    # ---- what happened: copies, safe to read from any thread --------------------------------

    def _snapshot(self, select: Callable[[], T]) -> T:
        """Select and deep-copy under the lock, so other threads never see a change half made."""
        with self._lock:
            return copy_json(select())

    @property
    def calls(self) -> list[Json]:
        """Every request served, in order: {method, path, query, json, status, operation, at}."""
        return self._snapshot(lambda: self._recorder.calls)

    @property
    def hook_calls(self) -> list[Json]:
        """Every command-hook call: what was sent, what came back, status, elapsed, outcome."""
        return self._snapshot(lambda: self._recorder.hook_calls)

    @property
    def event_hook_calls(self) -> list[Json]:
        """Every event sent to an event hook, one record per event and hook: {hook_id, url, event_type,
        cid, webhook_id, headers, payload, compressed, attempts: [{status, error, elapsed}], outcome}.
        `outcome` is pending until it settles as delivered, failed (attempts used up), dropped (the
        hook's queue was full) or cancelled (the stand-in stopped first)."""
        return self._snapshot(lambda: self._recorder.event_hook_calls)

    def writes(self, kind: str) -> list[Json]:
        """Successful write calls of a kind: app, command, channel_type, user, message, event, channel."""
        return self._snapshot(lambda: self._recorder.writes(kind))

    def messages(self, cid: str) -> list[Json]:
        """Stored messages of a channel, thread replies included, oldest first."""
        return self._snapshot(lambda: oldest_first(m for m in self._chat.messages.values() if m["cid"] == cid))

    def message(self, message_id: str) -> Json | None:
        return self._snapshot(lambda: self._chat.messages.get(message_id))

    def ephemeral(self, user_id: str) -> list[Json]:
        """Messages only this user saw (command-hook `error`/`ephemeral` answers)."""
        return self._snapshot(lambda: self._chat.ephemeral.get(user_id, []))

    def events(self, cid: str | None = None) -> list[Json]:
        """Events sent through the event endpoint (e.g. ai_indicator.*), optionally for one channel."""
        return self._snapshot(lambda: [e for e in self._chat.events if cid is None or e["cid"] == cid])

    def published(self, cid: str | None = None) -> list[Json]:
        """The full event log (message.new, message.updated, sent events)."""
        return self._snapshot(lambda: [e for e in self._feed.published if cid is None or e.get("cid") == cid])

    def members(self, cid: str) -> list[str]:
        """The ids of the channel's members, in the order they joined."""
        return self._snapshot(lambda: self._chat.members.get(cid, []))

    def user(self, user_id: str) -> Json | None:
        return self._snapshot(lambda: self._chat.users.get(user_id))

    @property
    def rate_limited(self) -> dict[str, int]:
        """How many calls Stream's rate limits answered with 429, by operation (SendMessage,
        UpdateMessage, UpdateMessagePartial). Injected 429s are not counted here."""
        return self._snapshot(lambda: dict(self._limits.rejected))

    # ---- test controls -----------------------------------------------------------------------

    def inject_fault(
        self,
        method: str,
        path_pattern: str,
        status: int | None = 429,
        times: int = 1,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        chance: float = 1.0,
        reset_in: int = 60,
    ) -> None:
        """Make the next `times` requests matching `method` ("*" = any) and the regex
        `path_pattern` (searched in the path, e.g. "/message$") fail with `status`
        after `delay` seconds, or, with status=None, only be delayed and then served.
        With `chance` < 1 each matching request is hit at random (seeded, so runs repeat);
        `times` then counts hits. A 429 says the window resets `reset_in` seconds later."""
        self._faults.inject(method, path_pattern, status, times, headers or {}, delay, chance, reset_in)

    def set_max_message_length(self, channel_type: str, length: int) -> None:
        self._config.set_max_message_length(channel_type, length)

    def enforce_rate_limits(self, enabled: bool = True, *, per_minute: Mapping[str, int] | None = None,
                            clock: Clock | None = None) -> None:
        """Enforce Stream's app limits (or stop): Send Message and Update Message 1,000 a minute
        each, and a thirtieth of that (33) a second; beyond, 429 with X-RateLimit-* headers.
        Partial updates share Update Message's bucket: an assumption, see rate_limits.py.
        `per_minute` overrides a bucket's limit ({"SendMessage": 60}), `clock` the time (unix
        seconds). Counting starts afresh."""
        self._limits.configure(enabled=enabled, per_minute=per_minute, clock=clock)

    # ---- the live feed: subscribers live on the server's event loop ----------------------------

    def subscribe(self) -> asyncio.Queue[Json]:
        """A queue that receives every published event from now on (call on the server loop)."""
        return self._feed.subscribe()

    def unsubscribe(self, queue: asyncio.Queue[Json]) -> None:
        self._feed.unsubscribe(queue)
