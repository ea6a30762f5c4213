"""The Starlette app: routes, and a lifespan that syncs with Stream on start and drains replies on stop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import time
from typing import AsyncIterator, Callable, Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from slashbots.admission import Gate
from slashbots.config import Config
from slashbots.conversation_requests import rebuild_request
from slashbots.defaults import tokens_per_answer, with_provider_defaults
from slashbots.events import EventsEndpoint
from slashbots.metrics import Metrics
from slashbots.plugin_manager import PluginManager, build_providers, close_providers, plugin_manager
from slashbots.proxies import UnsupportedProxy
from slashbots.public_refusals import PublicRefusals
from slashbots.replies import Replies
from slashbots.shared import SharedState
from slashbots.shared.local import LocalState
from slashbots.stops import Stops
from slashbots.stream import StreamError, StreamGateway, describe_error
from slashbots.sync import SyncRefused, events_url_for, handler_url_for, sync_bots
from slashbots.threads import ThreadMemory
from slashbots.tools import bot_tools
from slashbots.webhook import WebhookEndpoint

log = logging.getLogger("slashbots")


# SIGTERM to exit takes at most `shutdown_timeout` plus this: replies still running at the
# deadline get ENDING_GRACE to write their "interrupted" note, then closing gets the rest.
SHUTDOWN_OVERRUN = 5.0
ENDING_GRACE = 2.5
SYNC_WAIT = 15.0  # seconds an instance waits for another that is syncing the same config


class StartupError(Exception):
    """The server cannot start; the message tells the operator what to fix."""


class StopClock:
    """When the server was asked to stop: the moment every shutdown deadline counts from.

    uvicorn closes its connections before the lifespan's shutdown runs, so the signal
    handler marks the time (``slashbots serve`` does); otherwise it is when shutdown began.
    """

    def __init__(self) -> None:
        self.since: float | None = None

    def mark(self) -> float:
        if self.since is None:
            self.since = time.monotonic()
        return self.since


def redis_prefix(config: Config) -> str:
    """What every Redis key starts with. The API key names the Stream app: two apps' deployments
    may share one Redis without mixing."""
    return f"slashbots:{config.stream.api_key}:"


def shared_state(config: Config, metrics: Metrics | None = None) -> SharedState:
    """Redis when ``server.redis_url`` (or ``SLASHBOTS_REDIS_URL``) is set, else this process alone."""
    if not config.server.redis_url:
        return LocalState(config.server.stream_writes_per_second)
    from slashbots.shared.redis_state import RedisState  # the Redis client loads only when used

    return RedisState(config.server.redis_url, prefix=redis_prefix(config),
                      writes_per_second=config.server.stream_writes_per_second,
                      timeout=config.server.redis_timeout_ms / 1000, lease=config.server.reply_lease_seconds,
                      metrics=metrics)


def create_app(
    config: Config,
    *,
    pm: PluginManager | None = None,
    stream_url: str | None = None,
    public_url: str | None = None,
    sync: bool = True,
    routes: Sequence[BaseRoute] = (),
    on_fatal: Callable[[], None] | None = None,
) -> Starlette:
    """Build the server for ``config``. Plugins and providers load now, so config errors surface before serving."""
    if not config.stream.configured:
        raise StartupError(
            f"{config.source}: stream.api_key and stream.api_secret are empty; "
            "set STREAM_API_KEY and STREAM_API_SECRET (see the README)"
        )
    pm = pm or plugin_manager(config)
    tools = bot_tools(config, pm)
    providers = build_providers(config, pm)
    config = with_provider_defaults(config, pm)
    metrics = Metrics()
    try:
        gateway = StreamGateway(config.stream.api_key, config.stream.api_secret, base_url=stream_url, metrics=metrics)
    except UnsupportedProxy as exc:
        raise StartupError(str(exc)) from None
    shared = shared_state(config, metrics)
    bots = {bot.command: bot for bot in config.bots}
    threads = ThreadMemory(shared, gateway, config.server.thread_memory_days)
    replies = Replies(
        gateway, providers, pm.hook,
        max_in_flight=config.server.max_replies_in_flight,
        max_lag=config.server.max_loop_lag_ms / 1000,
        shared=shared,
        lease_seconds=config.server.reply_lease_seconds,
        rebuild=functools.partial(rebuild_request, bots),
        metrics=metrics,
        tools=tools,
        threads=threads,
    )
    gate = Gate(shared, reserves={command: tokens_per_answer(provider) for command, provider in providers.items()},
                metrics=metrics)
    webhook = WebhookEndpoint(config.stream.api_key, config.stream.api_secret, bots, replies, shared, metrics, gate)
    events = EventsEndpoint(config.stream.api_key, config.stream.api_secret, config.bots, replies, shared, threads,
                            Stops(config.bots, replies, shared), PublicRefusals(gateway, shared, metrics), metrics, gate)
    public_url = public_url if public_url is not None else os.environ.get("SLASHBOTS_PUBLIC_URL")
    handler_url = handler_url_for(config, public_url)
    events_url = events_url_for(config, public_url)

    async def keep_syncing(app: Starlette) -> None:
        """Sync with Stream, retrying while it is unreachable; a refusal (bad key, ...) stops the server."""
        delay = 1.0
        # Instances starting together take turns: one syncs, the rest wait for it, then find
        # (with reads only) that Stream already matches. Same config, same turn.
        turn = "sync:" + hashlib.sha256(repr((config.bots, handler_url, events_url)).encode()).hexdigest()[:16]
        await shared.first_of_many(turn, wait=SYNC_WAIT)
        while True:
            try:
                plan = await sync_bots(gateway, config, handler_url, events_url=events_url)
            except StreamError as exc:
                if exc.retryable:
                    log.warning("could not sync with Stream (%s); retrying in %.0fs", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
                    continue
                fatal = f"could not sync bots with Stream: {describe_error(exc)}"
            except SyncRefused as exc:
                fatal = f"not syncing with Stream: {exc}"
            else:
                await shared.done(turn)
                replies.max_message_length.update(plan.max_message_length)
                app.state.ready = True
                return
            app.state.fatal = fatal
            log.error("%s", fatal)
            if on_fatal is not None:
                on_fatal()
            return

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.fatal = None
        app.state.ready = not sync
        # In the background: the webhook works for commands Stream already knows while Stream is away.
        await shared.start()
        syncing = asyncio.create_task(keep_syncing(app)) if sync else None
        watching = asyncio.create_task(replies.lag.watch())
        leasing = asyncio.create_task(replies.keep_leases())
        try:
            yield
        finally:
            app.state.ready = False
            watching.cancel()
            if syncing is not None:
                syncing.cancel()
            stopped_at = app.state.stop_clock.mark()
            finish_by = stopped_at + config.server.shutdown_timeout
            await replies.drain(finish_by, finish_by + ENDING_GRACE)
            leasing.cancel()  # after the drain: replies finishing in it still need their leases renewed
            try:
                async with asyncio.timeout(max(finish_by + SHUTDOWN_OVERRUN - 0.25 - time.monotonic(), 0.1)):
                    await close_providers(providers)
                    await gateway.close()
                    await shared.close()
            except TimeoutError:
                log.warning("providers or the Stream client did not close in time; exiting anyway")

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        """Synced with Stream and with room for another reply: what a load balancer should route on."""
        synced = getattr(request.app.state, "ready", False)
        ready = synced and replies.accepting and not replies.full
        return JSONResponse({"ready": ready, "synced": synced, "replies_in_flight": len(replies.running)},
                            status_code=200 if ready else 503)

    app = Starlette(
        routes=[
            Route("/webhook", webhook, methods=["POST"]),
            Route("/events", events, methods=["POST"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics.endpoint),
            *routes,
        ],
        lifespan=lifespan,
    )
    app.state.replies = replies
    app.state.events = events
    app.state.stop_clock = StopClock()
    app.state.plugins = pm
    app.state.config = config
    return app
