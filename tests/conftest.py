"""Fixtures: a Stream stand-in on loopback, and slashbots serving a bots.yaml against it.

Everything talks over real sockets: the stream-chat SDK calls the stand-in over HTTP, the
stand-in calls our /webhook the way Stream does (signed), and replies come back over HTTP.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

import pytest
from stream_chat import StreamChatAsync

from slashbots.config import load_config
from slashbots.sandbox.loopback import LoopbackServer
from slashbots.sandbox.standin import StreamStandIn

# The general machinery is shared with plugin authors' tests (core/testing.py); the tests
# import it from here, so this module re-exports it.
from slashbots.testing import (  # noqa: F401
    API_KEY,
    API_SECRET,
    Stream,
    bot_messages,
    final_reply,
    send,
    serve_app,
    stream_standin,
    wait_for,
    wait_until_ready,
)
from tests.support.redis_server import RedisServer, require_redis_server  # noqa: E402

ECHO_BOT = """\
  - command: echo
    description: Repeats what you say
    args: "[text]"
    provider: echo
    channel_types: [messaging]
    identity: {id: echo-bot, name: Echo bot, image: https://example.com/echo.png}
"""


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server for the test; skipped, with the reason, where redis-server is missing."""
    server = RedisServer(require_redis_server(), tmp_path).start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.resume()  # a test may end with it paused; SIGTERM must reach a running process
        server.stop()


@pytest.fixture
def stream() -> Iterator[Stream]:
    with stream_standin() as running:
        yield running


@dataclass
class Served:
    """slashbots running on loopback, with a config of the test's choosing."""

    url: str
    app: Any
    stream: Stream

    @property
    def standin(self) -> StreamStandIn:
        return self.stream.standin


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    def write(bots: str, extra: str = "") -> Path:
        path = tmp_path / "bots.yaml"
        path.write_text(
            f"stream:\n  api_key: {API_KEY}\n  api_secret: {API_SECRET}\n{extra}bots:\n{textwrap.dedent(bots)}",
            encoding="utf-8",
        )
        return path

    return write


@pytest.fixture
def serve(stream: Stream, write_config: Callable[..., Path]) -> Iterator[Callable[..., Served]]:
    """``serve(bots_yaml_fragment)`` starts slashbots; every server started is stopped after the test."""
    servers: list[LoopbackServer] = []

    def start(bots: str = ECHO_BOT, extra: str = "", **options: Any) -> Served:
        server, app = serve_app(load_config(write_config(bots, extra)), stream, **options)
        servers.append(server)
        return Served(server.url, app, stream)

    yield start
    for server in reversed(servers):
        server.stop()


@pytest.fixture
async def chat(stream: Stream) -> AsyncIterator[StreamChatAsync]:
    """A server-side SDK client, used to act as Stream's users (the stand-in runs their commands)."""
    client = StreamChatAsync(API_KEY, API_SECRET, base_url=stream.url)
    yield client
    await client.close()
