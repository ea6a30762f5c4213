"""Fixtures: a Stream stand-in on loopback, and slashbots serving a bots.yaml against it.

Everything talks over real sockets: the stream-chat SDK calls the stand-in over HTTP, the
stand-in calls our /webhook the way Stream does (signed), and replies come back over HTTP.
"""

from __future__ import annotations

import asyncio
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

import httpx
import pytest
from stream_chat import StreamChatAsync

from core.app import create_app
from core.config import load_config
from core.sandbox.loopback import LoopbackServer, bind_loopback
from core.sandbox.stream_standin import StreamStandIn

API_KEY = "test-key"
API_SECRET = "test-secret-that-is-long-enough-for-hs256"

ECHO_BOT = """\
  - command: echo
    description: Repeats what you say
    args: "[text]"
    provider: echo
    channel_types: [messaging]
    identity: {id: echo-bot, name: Echo bot, image: https://example.com/echo.png}
"""


@dataclass
class Stream:
    standin: StreamStandIn
    url: str


@pytest.fixture
def stream() -> Iterator[Stream]:
    standin = StreamStandIn(API_KEY, API_SECRET)
    with LoopbackServer(standin.app) as server:
        yield Stream(standin, server.url)


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
        config = load_config(write_config(bots, extra))
        sock = bind_loopback()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        app = create_app(config, stream_url=stream.url, public_url=url, **options)
        servers.append(LoopbackServer(app, sock=sock).start())
        wait_until_ready(url)
        return Served(url, app, stream)

    yield start
    for server in reversed(servers):
        server.stop()


def wait_until_ready(url: str, timeout: float = 10.0) -> None:
    """The server listens at once but syncs with Stream in the background; /readyz says when it is done."""
    deadline = time.monotonic() + timeout
    while httpx.get(url + "/readyz").status_code != 200:
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} was not ready within {timeout}s")
        time.sleep(0.02)


@pytest.fixture
async def chat(stream: Stream) -> AsyncIterator[StreamChatAsync]:
    """A server-side SDK client, used to act as Stream's users (the stand-in runs their commands)."""
    client = StreamChatAsync(API_KEY, API_SECRET, base_url=stream.url)
    yield client
    await client.close()


async def send(chat: StreamChatAsync, text: str, *, user: str = "alice", cid: str = "messaging:general",
               parent_id: str | None = None) -> dict[str, Any]:
    """Type ``text`` as ``user``; returns the message as Stream answered the sender."""
    channel_type, _, channel_id = cid.partition(":")
    await chat.upsert_user({"id": user, "name": user.title()})
    message: dict[str, Any] = {"text": text}
    if parent_id:
        message["parent_id"] = parent_id
    response = await chat.channel(channel_type, channel_id).send_message(message, user)
    return response["message"]


async def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy (replies land in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def bot_messages(standin: StreamStandIn, bot_id: str, cid: str = "messaging:general") -> list[dict[str, Any]]:
    return [m for m in standin.messages(cid) if m["user"]["id"] == bot_id]


async def final_reply(standin: StreamStandIn, bot_id: str, cid: str = "messaging:general", count: int = 1,
                      timeout: float = 10.0) -> list[dict[str, Any]]:
    """The bot's messages once ``count`` of them exist and none is still generating."""

    def done() -> list[dict[str, Any]] | None:
        messages = bot_messages(standin, bot_id, cid)
        if len(messages) >= count and not any(m.get("generating") for m in messages):
            return messages
        return None

    return await wait_for(done, timeout, f"{count} final message(s) from {bot_id}")
