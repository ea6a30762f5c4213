"""``slashbots serve`` with no Stream keys: a local Stream stand-in, the bots, and a chat page.

Both servers share one event loop, so the chat page can read the stand-in's state and
follow its events directly, while everything between slashbots and "Stream" still goes over
HTTP exactly as in production: the same sync, signed webhooks, the same SDK calls.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets

import uvicorn

from slashbots.app import create_app
from slashbots.config import Config, StreamSettings
from slashbots.sandbox.chat_api import chat_routes
from slashbots.sandbox.loopback import bind_loopback
from slashbots.sandbox.standin import StreamStandIn

log = logging.getLogger("slashbots.sandbox")

SANDBOX_KEY = "sandbox"


def banner(config: Config, url: str) -> str:
    commands = ", ".join(f"/{bot.command}" for bot in config.bots)
    return (
        f"\n  slashbots sandbox: {config.source} has no Stream API key and secret, so this runs a local\n"
        f"  stand-in for Stream with a chat page. Open {url}/ and try {commands}.\n\n"
        "  To connect a real Stream app instead, set STREAM_API_KEY, STREAM_API_SECRET and\n"
        "  SLASHBOTS_PUBLIC_URL (a URL where Stream can reach this server), then run slashbots serve again.\n"
    )


async def serve_sandbox(config: Config, host: str, port: int) -> None:
    secret = secrets.token_hex(32)  # fresh each run: nothing outside this process can sign webhooks
    standin = StreamStandIn(SANDBOX_KEY, secret)
    stream_socket = bind_loopback()
    stream_url = f"http://127.0.0.1:{stream_socket.getsockname()[1]}"
    # The stand-in shares this loop, and a browser usually runs beside it: lag here is not
    # overload, so it must not turn a newcomer's first /echo away as "busy".
    config = dataclasses.replace(config, stream=StreamSettings(SANDBOX_KEY, secret),
                                 server=dataclasses.replace(config.server, max_loop_lag_ms=60_000))
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = f"http://{local}:{port}"
    # Built before anything listens, so a config or plugin error stops us cleanly.
    app = create_app(config, stream_url=stream_url, public_url=url, routes=chat_routes(standin, stream_url))

    # uvicorn's loggers are shared: this server's quiet level holds only until the bots' server sets its own.
    stream_server = uvicorn.Server(uvicorn.Config(standin.app, log_level="warning", access_log=False, log_config=None))
    stream_task = asyncio.create_task(stream_server.serve(sockets=[stream_socket]))
    while not stream_server.started:
        if stream_task.done():
            await stream_task  # raises what stopped it
        await asyncio.sleep(0.01)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None, log_level="info",
                                           timeout_graceful_shutdown=2))
    print(banner(config, url), flush=True)
    try:
        await server.serve()
    finally:
        stream_server.should_exit = True
        await stream_task
