"""The Starlette app: routes, and a lifespan that syncs with Stream on start and drains replies on stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import AsyncIterator, Callable, Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from slashbots.config import Config
from slashbots.metrics import Metrics
from slashbots.plugin_manager import PluginManager, build_providers, close_providers, plugin_manager
from slashbots.proxies import UnsupportedProxy
from slashbots.replies import Replies
from slashbots.stream import StreamError, StreamGateway, describe_error
from slashbots.sync import handler_url_for, sync_bots
from slashbots.webhook import WebhookEndpoint

log = logging.getLogger("slashbots")


class StartupError(Exception):
    """The server cannot start; the message tells the operator what to fix."""


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
    providers = build_providers(config, pm)
    metrics = Metrics()
    try:
        gateway = StreamGateway(config.stream.api_key, config.stream.api_secret, base_url=stream_url, metrics=metrics)
    except UnsupportedProxy as exc:
        raise StartupError(str(exc)) from None
    replies = Replies(
        gateway, providers, pm.hook,
        max_in_flight=config.server.max_replies_in_flight,
        max_lag=config.server.max_loop_lag_ms / 1000,
        writes_per_second=config.server.stream_writes_per_second,
        metrics=metrics,
    )
    webhook = WebhookEndpoint(
        config.stream.api_key,
        config.stream.api_secret,
        {bot.command: bot for bot in config.bots},
        replies,
        metrics,
    )
    public_url = public_url if public_url is not None else os.environ.get("SLASHBOTS_PUBLIC_URL")
    handler_url = handler_url_for(config, public_url)

    async def keep_syncing(app: Starlette) -> None:
        """Sync with Stream, retrying while it is unreachable; a refusal (bad key, ...) stops the server."""
        delay = 1.0
        while True:
            try:
                plan = await sync_bots(gateway, config, handler_url)
            except StreamError as exc:
                if exc.retryable:
                    log.warning("could not sync with Stream (%s); retrying in %.0fs", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
                    continue
                app.state.fatal = f"could not sync bots with Stream: {describe_error(exc)}"
                log.error("%s", app.state.fatal)
                if on_fatal is not None:
                    on_fatal()
                return
            replies.max_message_length.update(plan.max_message_length)
            app.state.ready = True
            return

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.fatal = None
        app.state.ready = not sync
        # In the background: the webhook works for commands Stream already knows while Stream is away.
        syncing = asyncio.create_task(keep_syncing(app)) if sync else None
        watching = asyncio.create_task(replies.lag.watch())
        try:
            yield
        finally:
            app.state.ready = False
            watching.cancel()
            if syncing is not None:
                syncing.cancel()
            await replies.drain(config.server.shutdown_timeout)
            await close_providers(providers)
            await gateway.close()

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
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics.endpoint),
            *routes,
        ],
        lifespan=lifespan,
    )
    app.state.replies = replies
    app.state.config = config
    return app
