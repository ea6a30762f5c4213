"""Test a slashbots plugin the way it runs: a pytest plugin for plugin authors.

slashbots registers this module with pytest (entry point ``pytest11``), so any test session
in an environment with slashbots installed has the ``slashbots`` fixture::

    async def test_roll(slashbots):
        bots = slashbots.start([{"command": "roll", "provider": "dice"}], plugins=["slashbots_dice"])
        assert await bots.command("/roll 1d1") == "🎲 1"

``start`` serves the bots on loopback against a local stand-in for Stream (no network, no
Stream account); ``command`` types the command as a user, so it travels the way it does in
production (Stream's SDK, a signed webhook, the reply job, the relay) and returns the bot's
final answer. Everything Stream was asked to do is recorded on the stand-in.

A tool is tested through a chatgpt bot talking to a scripted model (``core/scripted_model.py``)::

    async def test_the_model_rolls(slashbots):
        model = slashbots.model(call("roll_dice", sides=1), "You rolled a 1.")
        bots = slashbots.start([{"command": "gpt", "provider": "chatgpt", "tools": ["roll_dice"],
                                 "options": model.options}], plugins=["slashbots_dice"])
        assert await bots.command("/gpt roll a d1") == "🔧 roll_dice(sides=1)\n\nYou rolled a 1."
        assert model.tool_results == [("roll_dice", "🎲 1")]

Only the fixture lives in pytest's namespace; the helpers below are plain functions and
classes, imported by whoever wants them. The server stack (Starlette, uvicorn, the Stream
SDK) is imported when a test first starts bots, not when pytest loads this plugin, so
pytest starts as fast as before in any environment that has slashbots installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

import pytest
import yaml

from slashbots.scripted_model import ScriptedCall, ScriptedModel, call, scripted_model

__all__ = [
    "API_KEY", "API_SECRET", "Bots", "ScriptedCall", "ScriptedModel", "Slashbots", "Stream", "bot_messages",
    "bots_yaml", "call", "final_reply", "free_port", "scripted_model", "send", "serve_app", "slashbots", "stream_standin",
    "wait_for", "wait_until_ready",
]

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from stream_chat import StreamChatAsync

    from slashbots.config import Config
    from slashbots.sandbox.loopback import LoopbackServer
    from slashbots.sandbox.standin import StreamStandIn

API_KEY = "test-key"
API_SECRET = "test-secret-that-is-long-enough-for-hs256"  # PyJWT wants 32+ bytes for HS256

BotsSpec = str | Sequence[Mapping[str, Any]]  # YAML text, or one dict per bot


@dataclass
class Stream:
    """The Stream stand-in, served on loopback at ``url``."""

    standin: StreamStandIn
    url: str


@contextlib.contextmanager
def stream_standin() -> Iterator[Stream]:
    """Serve a fresh Stream stand-in (credentials ``API_KEY``/``API_SECRET``) until the block ends."""
    from slashbots.sandbox.loopback import LoopbackServer
    from slashbots.sandbox.standin import StreamStandIn

    standin = StreamStandIn(API_KEY, API_SECRET)
    with LoopbackServer(standin.app) as server:
        yield Stream(standin, server.url)


async def send(chat: StreamChatAsync, text: str, *, user: str = "alice", cid: str = "messaging:general",
               parent_id: str | None = None, mentioned_users: Sequence[str] = ()) -> dict[str, Any]:
    """Type ``text`` as ``user``; returns the message as Stream answered the sender."""
    channel_type, _, channel_id = cid.partition(":")
    await chat.upsert_user({"id": user, "name": user.title()})
    message: dict[str, Any] = {"text": text}
    if parent_id:
        message["parent_id"] = parent_id
    if mentioned_users:
        message["mentioned_users"] = list(mentioned_users)
    response = await chat.channel(channel_type, channel_id).send_message(message, user)
    return response["message"]


async def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy, and return it (replies land in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def bot_messages(standin: StreamStandIn, bot_id: str, cid: str = "messaging:general") -> list[dict[str, Any]]:
    """The messages ``bot_id`` posted in ``cid``, thread replies included, oldest first."""
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


def free_port() -> int:
    """A TCP port free on loopback right now, for a server started in another process."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_ready(url: str, timeout: float = 10.0, *, app: Starlette | None = None,
                     process: subprocess.Popen[Any] | None = None) -> None:
    """Block until the server at ``url`` has synced its bots with Stream (``/readyz`` answers 200).

    Given its ``app`` (in this process) or its ``process``, a server that gave up, or exited,
    fails at once, saying why, instead of at the timeout.
    """
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        fatal = getattr(app.state, "fatal", None) if app is not None else None
        if process is not None and process.poll() is not None:
            fatal = f"{process.args[0]} exited with status {process.returncode} before it was ready"
        if fatal or time.monotonic() > deadline:
            raise RuntimeError(fatal or f"slashbots at {url} was not ready within {timeout}s")
        time.sleep(0.02)


def serve_app(config: Config, stream: Stream, **options: Any) -> tuple[LoopbackServer, Starlette]:
    """Serve slashbots for ``config`` on loopback against ``stream``; returns once it has synced.

    ``options`` go to ``create_app`` (e.g. ``pm``). The caller stops the server.
    """
    from slashbots.app import create_app
    from slashbots.sandbox.loopback import LoopbackServer, bind_loopback

    sock = bind_loopback()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"  # known before serving: the app registers it with Stream
    app = create_app(config, stream_url=stream.url, public_url=url, **options)
    server = LoopbackServer(app, sock=sock).start()
    try:
        wait_until_ready(url, app=app)
    except BaseException:
        server.stop()
        raise
    return server, app


def bots_yaml(bots: BotsSpec, plugins: Iterable[str] = ()) -> str:
    """A bots.yaml for the stand-in: ``bots`` as YAML text or dicts, filled in with test defaults.

    ``bots`` is a list of bots, or a whole bots.yaml (its ``stream:`` is replaced by the
    stand-in's keys). A bot needs only ``command`` and ``provider``: ``description``,
    ``channel_types`` (``[messaging]``) and ``identity`` (``{command}-bot``) get defaults.
    """
    document = yaml.safe_load(textwrap.dedent(bots)) if isinstance(bots, str) else {"bots": list(bots)}
    if isinstance(document, list):
        document = {"bots": document}
    if not isinstance(document, dict):
        raise TypeError(f"expected a list of bots or a bots.yaml mapping, got {document!r}")
    entries = document.get("bots")
    return yaml.safe_dump({
        **document,
        "stream": {"api_key": API_KEY, "api_secret": API_SECRET},
        "plugins": [*(document.get("plugins") or []), *plugins],
        "bots": [_with_defaults(entry) for entry in entries] if isinstance(entries, list) else entries,
    }, sort_keys=False, allow_unicode=True)


def _with_defaults(bot: Any) -> Any:
    if not isinstance(bot, Mapping) or not isinstance(bot.get("command"), str):
        return bot  # left for config validation to explain
    command = bot["command"]
    return {
        "description": f"The /{command} bot",
        "channel_types": ["messaging"],
        "identity": {"id": f"{command}-bot", "name": f"{command.title()} bot"},
        **bot,
    }


class Bots:
    """slashbots serving some bots against their own Stream stand-in; ``slashbots.start`` returns one."""

    def __init__(self, config: Config, app: Starlette, url: str, stream: Stream) -> None:
        self.config = config
        self.app = app
        self.url = url
        self.stream = stream

    @property
    def standin(self) -> StreamStandIn:
        """The Stream stand-in, with everything it saw (see ``core/sandbox/standin/stand_in.py``)."""
        return self.stream.standin

    @property
    def stream_calls(self) -> list[dict[str, Any]]:
        """Every request Stream received, in order: ``{method, path, query, json, status, operation, at}``."""
        return self.standin.calls

    def shown(self, cid: str = "messaging:general", bot: str | None = None) -> list[str]:
        """The texts a bot's messages showed in ``cid``, in the order users saw them.

        One entry per write that changed what was on screen: the first text, each patch of a
        streaming answer, the final text (empty placeholders left out). ``bot`` is a command
        (``"roll"``); by default, every bot of this server. A streamed answer has more than
        one entry, each the one before with more text.
        """
        ids = {b.identity.id for b in self.config.bots if bot is None or b.command == bot}
        texts: list[str] = []
        for event in self.standin.published(cid):
            message = event.get("message") or {}
            if event.get("type") in ("message.new", "message.updated") and (message.get("user") or {}).get("id") in ids:
                text = message.get("text") or ""
                if text and (not texts or texts[-1] != text):
                    texts.append(text)
        return texts

    def messages(self, cid: str = "messaging:general") -> list[dict[str, Any]]:
        """The messages of channel ``cid`` as Stream stores them, thread replies included, oldest first."""
        return self.standin.messages(cid)

    async def command(self, text: str, *, user: str = "alice", cid: str = "messaging:general",
                      parent_id: str | None = None, timeout: float = 10.0) -> str:
        """Send ``text`` (``/roll 2d6``) as ``user`` in ``cid`` and return the bot's final answer.

        The answer is the text the bot's reply ends with, once it has stopped generating;
        an answer long enough to continue in more messages comes back joined with newlines.
        Raises AssertionError when Stream or slashbots turned the command down (the error
        only its sender would see) or no reply was posted.
        """
        from stream_chat import StreamChatAsync

        name = text.removeprefix("/").split(maxsplit=1)[0] if text.startswith("/") else ""
        bot = self.config.bot(name)
        if bot is None:
            known = ", ".join(f"/{b.command}" for b in self.config.bots)
            raise ValueError(f"{text!r} does not start with a command of these bots ({known})")
        async with StreamChatAsync(API_KEY, API_SECRET, base_url=self.stream.url) as chat:
            sent = await send(chat, text, user=user, cid=cid, parent_id=parent_id, mentioned_users=self._mentioned(text))
        if sent["type"] == "error":
            raise AssertionError(f"{text!r} was turned down; {user} was told: {sent['text']}")
        if sent.get("command") != name:
            raise AssertionError(f"/{name} is not enabled in {cid.partition(':')[0]!r} channels; "
                                 f"the bot's channel_types are {list(bot.channel_types)}")
        # The webhook started the reply job before Stream answered the send, so it is running now.
        await wait_for(lambda: not self.app.state.replies.running, timeout, f"the reply to {text!r}")
        messages = self.messages(cid)
        after = [m["id"] for m in messages].index(sent["id"]) + 1
        replies = [m for m in messages[after:] if m["user"]["id"] == bot.identity.id and m.get("parent_id") == parent_id]
        if not replies:
            hook = self.standin.hook_calls[-1:]  # why Stream's webhook call did not start a reply
            outcome = {key: hook[0][key] for key in ("url", "status", "error", "outcome")} if hook else "none was made"
            raise AssertionError(f"{bot.identity.name} posted no reply to {text!r}; Stream's webhook call: {outcome}")
        return "\n".join(m["text"] for m in replies)


    async def message(self, text: str, *, user: str = "alice", cid: str = "messaging:general",
                      parent_id: str | None = None, timeout: float = 10.0) -> str | None:
        """Send ``text`` as ``user`` in ``cid``, an ordinary message, and return the bots' answer to it, if any.

        ``@Name`` or ``@id`` of any bot in ``text`` mentions that bot (as a chat client's composer
        does); the message reaches the bots the way Stream sends it, over the event webhook.
        Returns once everything the message set off has finished: the answer of the bot it
        asked (several bots' answers, joined by blank lines), or None when no bot answered.
        """
        sent = await self._send(text, user=user, cid=cid, parent_id=parent_id)
        await self._settle(sent["id"], timeout)
        answers = [m for m in self.messages(cid) if m.get("answer_to") == sent["id"]]
        if not answers:
            return None
        by_bot: dict[str, list[str]] = {}
        for answer in answers:
            by_bot.setdefault(answer["user"]["id"], []).append(answer["text"])
        return "\n\n".join("\n".join(texts) for texts in by_bot.values())

    async def reply(self, parent: str | Mapping[str, Any], text: str, *, user: str = "alice",
                    cid: str = "messaging:general", timeout: float = 10.0) -> str | None:
        """Reply with ``text`` in the thread under ``parent`` and return the bots' answer, as ``message`` does.

        ``parent`` is the message to reply under: its id, the message (a dict from ``messages()``),
        or its text (the latest message in ``cid`` with exactly that text, such as an answer
        ``message`` or ``command`` returned).
        """
        return await self.message(text, user=user, cid=cid, parent_id=self._find(parent, cid), timeout=timeout)

    async def stop(self, cid: str = "messaging:general", *, message_id: str | None = None, user: str = "alice",
                   timeout: float = 10.0) -> None:
        """Press the stop button in ``cid`` as ``user`` (``ai_indicator.stop``, as stream-chat's
        ``channel.stopAIResponse()`` sends it); returns once the replies it stopped have ended."""
        from stream_chat import StreamChatAsync

        channel_type, _, channel_id = cid.partition(":")
        event: dict[str, Any] = {"type": "ai_indicator.stop"}
        if message_id:
            event["message_id"] = message_id
        async with StreamChatAsync(API_KEY, API_SECRET, base_url=self.stream.url) as chat:
            await chat.upsert_user({"id": user, "name": user.title()})
            await chat.channel(channel_type, channel_id).send_event(event, user)
        await self._settle(None, timeout, event_type="ai_indicator.stop", replies=False)
        await wait_for(lambda: not [job for job in self.app.state.replies.running.values()
                                    if job.stopped and job.request.cid == cid], timeout, "the stopped replies to end")

    async def _send(self, text: str, *, user: str, cid: str, parent_id: str | None) -> dict[str, Any]:
        from stream_chat import StreamChatAsync

        async with StreamChatAsync(API_KEY, API_SECRET, base_url=self.stream.url) as chat:
            sent = await send(chat, text, user=user, cid=cid, parent_id=parent_id, mentioned_users=self._mentioned(text))
        if sent["type"] == "error":
            raise AssertionError(f"{text!r} was turned down; {user} was told: {sent['text']}")
        return sent

    def _mentioned(self, text: str) -> list[str]:
        """The bots ``text`` mentions as ``@Name`` or ``@id``, as a composer would send them."""
        lowered = text.lower()
        found = [b.identity.id for b in self.config.bots
                 if f"@{b.identity.name}".lower() in lowered or f"@{b.identity.id}".lower() in lowered]
        return list(dict.fromkeys(found))

    async def _settle(self, message_id: str | None, timeout: float, event_type: str = "message.new", *,
                      replies: bool = True) -> None:
        """Until Stream has delivered the event to /events, and the work it set off has ended (with
        ``replies``, every reply running)."""
        url = self.url + "/events"

        def delivered() -> bool:
            calls = [call for call in self.standin.event_hook_calls if call["url"] == url
                     and call["event_type"] == event_type
                     and (message_id is None or (call["payload"].get("message") or {}).get("id") == message_id)]
            return all(call["outcome"] != "pending" for call in calls)

        await wait_for(delivered, timeout, f"Stream to deliver the {event_type} event")
        await wait_for(lambda: not self.app.state.events.pending, timeout, "the event's background work")
        if replies:
            await wait_for(lambda: not self.app.state.replies.running, timeout, "the replies to finish")

    def _find(self, parent: str | Mapping[str, Any], cid: str) -> str:
        if isinstance(parent, Mapping):
            return str(parent["id"])
        messages = self.messages(cid)
        if any(m["id"] == parent for m in messages):
            return parent
        found = [m for m in messages if m.get("text") == parent]
        if not found:
            raise ValueError(f"no message in {cid} has the id or text {parent!r}")
        return str(found[-1]["id"])


class Slashbots:
    """The ``slashbots`` fixture: starts bots for one test and stops them after it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._running = contextlib.ExitStack()
        self._started = 0

    def start(self, bots: BotsSpec, plugins: Iterable[object] = (), *, entry_points: bool = False) -> Bots:
        """Serve ``bots`` (YAML text or a list of dicts, see ``bots_yaml``) with ``plugins``.

        A plugin is a dotted module path (loaded as bots.yaml's ``plugins:`` loads it), or a
        module or any object with ``@hookimpl`` functions, registered as it is. Installed
        packages' plugins are left out unless ``entry_points=True``, so a test sees the same
        plugins wherever it runs. Config and plugin errors raise here, as at start-up.
        """
        from slashbots.config import ConfigError, load_config
        from slashbots.plugin_manager import plugin_manager

        plugins = list(plugins)
        paths = [plugin for plugin in plugins if isinstance(plugin, str)]
        objects = [plugin for plugin in plugins if not isinstance(plugin, str)]
        self._started += 1
        directory = self.directory / f"slashbots-{self._started}"
        directory.mkdir()
        path = directory / "bots.yaml"
        path.write_text(bots_yaml(bots, paths), encoding="utf-8")
        try:
            config = load_config(path)
            pm = plugin_manager(config, entry_points=entry_points)
            for plugin in objects:
                if not pm.is_registered(plugin):  # an installed package may have brought it already
                    # Named for what it is, so errors and `slashbots plugins` say "ShoutPlugin", not an id.
                    name = getattr(plugin, "__name__", None) or type(plugin).__name__
                    pm.register(plugin, None if pm.has_plugin(name) else name)
            stream = self._running.enter_context(stream_standin())
            server, app = serve_app(config, stream, pm=pm)
        except ConfigError as exc:
            # The file is ours, filled in with defaults: its name and lines would mislead. The
            # path (bots[0].options) points into what the test passed.
            raise ConfigError("slashbots.start()", exc.path, exc.message) from None
        self._running.callback(server.stop)
        return Bots(config, app, server.url, stream)

    def model(self, *turns: str | ScriptedCall | Sequence[ScriptedCall]) -> ScriptedModel:
        """Serve a scripted model playing ``turns`` until the test ends; ``model.options`` points a bot at it.

        A turn is the text of an answer, a ``call(name, **arguments)``, or a list of calls made at once.
        """
        return self._running.enter_context(scripted_model(*turns))

    def stop(self) -> None:
        """Stop every server this fixture started, newest first."""
        self._running.close()


@pytest.fixture
def slashbots(tmp_path: Path) -> Iterator[Slashbots]:
    """Start bots with ``slashbots.start(bots, plugins=[...])``; they stop when the test ends."""
    harness = Slashbots(tmp_path)
    yield harness
    harness.stop()
