"""The sandbox as a newcomer meets it: `slashbots serve` with no keys, its chat API, and its page in a browser.

Servers run as real processes from the repository root with the shipped bots.yaml, exactly as
the README's first command starts them. The browser tests drive Debian's Chromium with
Playwright; without Chromium they skip, unless SLASHBOTS_REQUIRE_BROWSER=1 (CI) makes that
a failure. SLASHBOTS_SANDBOX_SCREENSHOT=docs/sandbox.png also saves the page as it looks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from stream_chat import StreamChatAsync

from slashbots.sandbox.chat_api import chat_routes
from slashbots.sandbox.loopback import LoopbackServer, bind_loopback
from slashbots.sandbox.standin import StreamStandIn
from tests.conftest import API_KEY, API_SECRET
from tests.support.openai_standin import OpenAIStandIn, Stream
from tests.support.processes import SLASHBOTS, free_port

pytestmark = pytest.mark.slow  # a browser: skip with -m 'not slow' while developing

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # the browser tests say so below; the rest still run
    sync_playwright = None

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
GENERAL = "messaging:general"
# Whatever the developer's shell has set must not turn the sandbox into a real deployment.
UNSET = ("STREAM_API_KEY", "STREAM_API_SECRET", "STREAM_CHAT_URL", "SLASHBOTS_PUBLIC_URL",
         "OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_API_KEY")


@dataclass
class Sandbox:
    """`slashbots serve` running in sandbox mode, and everything it printed so far."""

    url: str
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def printed(self, text: str, timeout: float = 5.0) -> str:
        """All output once `text` is in it (the output is read on another thread)."""
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert time.monotonic() < deadline, f"{text!r} not printed:\n{self.output}"
            time.sleep(0.05)
        return self.output

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # what Ctrl+C does
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                raise


@contextlib.contextmanager
def running_sandbox(**env: str) -> Iterator[Sandbox]:
    port = free_port()
    environment = {key: value for key, value in os.environ.items() if key not in UNSET} | env
    process = subprocess.Popen([SLASHBOTS, "serve", "--port", str(port)], cwd=ROOT, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sandbox = Sandbox(f"http://127.0.0.1:{port}", process)
    assert process.stdout is not None
    # Read all along, so a chatty server never blocks on a full pipe.
    threading.Thread(target=lambda: sandbox.lines.extend(iter(process.stdout.readline, "")), daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        while not _ready(sandbox.url):
            assert process.poll() is None, f"slashbots serve exited:\n{sandbox.output}"
            assert time.monotonic() < deadline, f"slashbots serve did not become ready:\n{sandbox.output}"
            time.sleep(0.1)
        yield sandbox
    finally:
        sandbox.stop()


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """The shipped bots.yaml with no Stream keys and no OpenAI key."""
    with running_sandbox() as running:
        yield running


async def send(url: str, text: str, user_id: str = "alice", cid: str = GENERAL) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{url}/sandbox/api/messages", json={"cid": cid, "user_id": user_id, "text": text})
    assert response.status_code == 200, response.text
    return response.json()["message"]


async def view(url: str, user_id: str, cid: str = GENERAL) -> list[dict[str, Any]]:
    """The channel as `user_id` sees it."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{url}/sandbox/api/messages", params={"cid": cid, "user_id": user_id})
    assert response.status_code == 200, response.text
    return response.json()["messages"]


class Events:
    """An open /sandbox/api/events stream, as a browser's EventSource reads it."""

    def __init__(self, lines: AsyncIterator[str]) -> None:
        self._lines = lines
        self.seen: list[dict[str, Any]] = []

    async def next(self) -> tuple[str, dict[str, Any]]:
        name, data = "message", []
        async for line in self._lines:
            if line == "" and data:
                return name, json.loads("\n".join(data))
            field_name, _, value = line.partition(":")
            if field_name == "event":
                name = value.strip()
            elif field_name == "data":
                data.append(value.removeprefix(" "))
        raise AssertionError("the event stream ended")

    async def until(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> dict[str, Any]:
        """The first event (from now on) that `predicate` accepts; every event read is kept in `seen`."""
        async def find() -> dict[str, Any]:
            while True:
                _, event = await self.next()
                self.seen.append(event)
                if predicate(event):
                    return event

        return await asyncio.wait_for(find(), timeout)


@contextlib.asynccontextmanager
async def listen(url: str, user_id: str) -> AsyncIterator[Events]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client:
        async with client.stream("GET", f"{url}/sandbox/api/events", params={"user_id": user_id}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = Events(response.aiter_lines())
            name, _ = await asyncio.wait_for(events.next(), 10)
            assert name == "ready"  # subscribed: nothing published from here on is missed
            yield events


def reply_from(bot_id: str, final: bool = True) -> Callable[[dict[str, Any]], bool]:
    def accept(event: dict[str, Any]) -> bool:
        message = event.get("message") or {}
        return message.get("user", {}).get("id") == bot_id and not (final and message.get("generating"))

    return accept


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return [message["text"] for message in messages]


# ---- the server and its API --------------------------------------------------------------------


def test_the_banner_says_sandbox_and_how_to_connect_stream(sandbox: Sandbox) -> None:
    output = sandbox.printed("slashbots sandbox")
    assert f"Open {sandbox.url}/ and try /gpt, /echo" in output
    assert "set STREAM_API_KEY, STREAM_API_SECRET and\n  SLASHBOTS_PUBLIC_URL" in output
    page = httpx.get(sandbox.url + "/")
    assert page.status_code == 200 and "<title>slashbots sandbox</title>" in page.text
    for asset in ("app.js", "style.css"):
        assert httpx.get(f"{sandbox.url}/sandbox/static/{asset}").status_code == 200


def test_the_api_lists_people_bots_channels_and_their_commands(sandbox: Sandbox) -> None:
    users = httpx.get(sandbox.url + "/sandbox/api/users").json()
    assert [person["name"] for person in users["people"]] == ["Alice", "Bob"]
    assert {(bot["command"], bot["name"]) for bot in users["bots"]} == {("gpt", "ChatGPT bot"), ("echo", "Echo bot")}
    channels = httpx.get(sandbox.url + "/sandbox/api/channels").json()["channels"]
    assert [channel["cid"] for channel in channels] == ["messaging:general", "messaging:random"]
    echo = {command["name"]: command for command in channels[0]["commands"]}["echo"]
    assert echo == {"name": "echo", "description": "Repeats what you say, as a bot", "args": "[text]"}
    assert "giphy" not in {command["name"] for command in channels[0]["commands"]}  # nothing answers it here


async def test_echo_answers_live_through_the_signed_webhook(sandbox: Sandbox) -> None:
    async with listen(sandbox.url, "bob") as bob:
        sent = await send(sandbox.url, "/echo hello")
        assert (sent["type"], sent["command"], sent["args"]) == ("regular", "echo", "hello")
        event = await bob.until(reply_from("echo-bot"))
    assert event["message"]["text"] == "hello"
    assert event["message"]["user"]["name"] == "Echo bot"
    assert any(m["id"] == event["message"]["id"] for m in await view(sandbox.url, "bob"))


async def test_a_mention_sent_through_the_api_is_answered_in_its_thread_view(sandbox: Sandbox) -> None:
    members = httpx.get(sandbox.url + "/sandbox/api/channels").json()["channels"][0]["members"]
    assert [(m["id"], m["name"]) for m in members] == [
        ("alice", "Alice"), ("bob", "Bob"), ("chatgpt-bot", "ChatGPT bot"), ("echo-bot", "Echo bot")]  # bots joined
    async with listen(sandbox.url, "alice") as alice:
        async with httpx.AsyncClient() as client:
            sent = (await client.post(f"{sandbox.url}/sandbox/api/messages", json={
                "cid": GENERAL, "user_id": "alice", "text": "@Echo bot start", "mentioned_users": ["echo-bot"]})).json()
        event = await alice.until(lambda e: reply_from("echo-bot")(e) and e["message"]["text"] == "start")
        async with httpx.AsyncClient() as client:
            await client.post(f"{sandbox.url}/sandbox/api/messages", json={
                "cid": GENERAL, "user_id": "bob", "text": "in the thread", "parent_id": event["message"]["id"]})
            thread = (await client.get(f"{sandbox.url}/sandbox/api/thread",
                                       params={"cid": GENERAL, "parent_id": event["message"]["id"]})).json()
            missing = await client.get(f"{sandbox.url}/sandbox/api/thread", params={"cid": GENERAL, "parent_id": "nope"})
            stop = await client.post(f"{sandbox.url}/sandbox/api/stop", json={"cid": GENERAL, "user_id": "bob"})
            stranger = await client.post(f"{sandbox.url}/sandbox/api/stop", json={"cid": GENERAL, "user_id": "eve"})
    assert event["message"]["answer_to"] == sent["message"]["id"]
    assert thread["parent"]["text"] == "start" and [m["text"] for m in thread["messages"]] == ["in the thread"]
    assert missing.status_code == 404
    assert (stop.status_code, stop.json()) == (200, {"event": {"type": "ai_indicator.stop"}})  # nothing to stop: fine
    assert stranger.status_code == 400


async def test_gpt_without_an_openai_key_says_how_to_set_one(sandbox: Sandbox) -> None:
    async with listen(sandbox.url, "alice") as alice:
        await send(sandbox.url, "/gpt hi")
        event = await alice.until(reply_from("chatgpt-bot"))
    answer = event["message"]["text"]
    assert "needs an OpenAI API key" in answer
    assert "OPENAI_API_KEY" in answer


async def test_an_unknown_command_is_an_error_only_the_sender_sees(sandbox: Sandbox) -> None:
    async with listen(sandbox.url, "bob") as bob:
        sent = await send(sandbox.url, "/nope hi", user_id="alice")
        assert sent["type"] == "error"
        assert sent["text"].startswith("/nope is not a command in this channel. Commands here: /gpt, /echo")
        # Something after it that Bob does see: by then, the error would have reached him too.
        await send(sandbox.url, "/echo after the typo", user_id="alice")
        await bob.until(lambda e: reply_from("echo-bot")(e) and e["message"]["text"] == "after the typo")
    assert not [e for e in bob.seen if "/nope" in e["message"]["text"]]
    assert sent["id"] in [m["id"] for m in await view(sandbox.url, "alice")]
    assert not [m for m in await view(sandbox.url, "bob") if "/nope" in m["text"]]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"cid": GENERAL, "user_id": "mallory", "text": "hi"}, 400),
        ({"cid": "messaging:nowhere", "user_id": "alice", "text": "hi"}, 404),
        ({"cid": GENERAL, "user_id": "alice", "text": "   "}, 400),
        ({"cid": GENERAL, "user_id": "alice", "text": "x" * 5001}, 400),  # Stream's own limit, passed on
    ],
)
def test_sending_rejects_what_stream_would(sandbox: Sandbox, body: dict[str, Any], status: int) -> None:
    response = httpx.post(sandbox.url + "/sandbox/api/messages", json=body)
    assert response.status_code == status
    assert response.json()["error"]


async def test_ctrl_c_ends_open_event_streams_at_once() -> None:
    with running_sandbox() as running:
        async with listen(running.url, "alice") as alice:
            started = time.monotonic()
            running.process.send_signal(signal.SIGINT)
            with pytest.raises(AssertionError, match="the event stream ended"):
                await asyncio.wait_for(alice.next(), 10)
            await asyncio.to_thread(running.process.wait, 10)
        assert time.monotonic() - started < 5, running.output
    running.printed("Finished server process")


async def test_events_skip_answers_meant_for_someone_else() -> None:
    """A command hook's error answer is published for its sender only (Stream's `only_for`)."""
    standin = StreamStandIn(API_KEY, API_SECRET)

    async def hook(request: Request) -> JSONResponse:
        message = (await request.json())["message"]
        return JSONResponse({"message": {**message, "type": "error", "text": "Only for you."}})

    sock = bind_loopback()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    # One server, so the chat routes share the stand-in's event loop, as in `slashbots serve`.
    routes = [Route("/hook", hook, methods=["POST"]), *chat_routes(standin, url), Mount("/", standin.app)]
    app = Starlette(routes=routes)
    with LoopbackServer(app, sock=sock):
        async with StreamChatAsync(API_KEY, API_SECRET, base_url=url) as chat:
            await chat.create_command({"name": "weather", "description": "Weather", "args": "[city]"})
            await chat.update_channel_type("messaging", commands=["giphy", "weather"])
            await chat.update_app_settings(custom_action_handler_url=url + "/hook")
        async with listen(url, "alice") as alice, listen(url, "bob") as bob:
            sent = await send(url, "/weather Paris")
            assert (sent["type"], sent["text"]) == ("error", "Only for you.")
            await send(url, "and hello")
            for events in (alice, bob):
                await events.until(lambda e: e["message"]["text"] == "and hello")
    assert "Only for you." in texts([e["message"] for e in alice.seen])
    assert "Only for you." not in texts([e["message"] for e in bob.seen])
    assert standin.ephemeral("alice")[0]["text"] == "Only for you."


# ---- the page, in a real browser ---------------------------------------------------------------

ANSWER = (
    "A **vector clock** is a list of counters, one per process, that tells which events in a "
    "distributed system happened before which.\n\n"
    "Each process bumps its own entry on every event and sends its clock with each message; "
    "the receiver takes the element-wise maximum, then bumps its own entry:\n\n"
    "```python\n"
    "def receive(mine, theirs, me):\n"
    "    clock = [max(a, b) for a, b in zip(mine, theirs)]\n"
    "    clock[me] += 1\n"
    "    return clock\n"
    "```\n\n"
    "If every entry of `A` is ≤ the matching entry of `B`, A happened before B; "
    "if neither clock dominates, the events were concurrent."
)


def pieces(text: str, words: int = 4) -> list[str]:
    """The answer as a model streams it: a few words at a time."""
    tokens = re.findall(r"\S+\s*|\s+", text)
    return ["".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]


# Records every state the page shows of the indicator and of the ChatGPT bot's messages,
# so the test can look back at states too short-lived to poll for.
RECORDER = """() => {
  window.shown = [];
  const record = () => {
    const indicator = document.querySelector("#indicator");
    const answer = [...document.querySelectorAll(".message.from-bot")]
      .filter((m) => m.querySelector(".name")?.textContent === "ChatGPT bot").pop();
    const state = {
      indicator: indicator.hidden ? "" : indicator.textContent,
      text: answer ? answer.querySelector(".text").textContent : null,
      generating: answer ? answer.classList.contains("generating") : null,
    };
    const last = window.shown[window.shown.length - 1];
    if (!last || JSON.stringify(last) !== JSON.stringify(state)) window.shown.push(state);
  };
  const everything = {subtree: true, childList: true, characterData: true, attributes: true};
  new MutationObserver(record).observe(document.body, everything);
}"""


def _no_browser(reason: str) -> None:
    if os.environ.get("SLASHBOTS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}; SLASHBOTS_REQUIRE_BROWSER=1 needs the browser tests to run")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        _no_browser("the playwright package is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        _no_browser(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def gpt_sandbox() -> Iterator[tuple[Sandbox, OpenAIStandIn]]:
    """The shipped bots.yaml with no Stream keys, its /gpt pointed at an OpenAI stand-in."""
    openai = OpenAIStandIn()
    with LoopbackServer(openai.app) as server:
        with running_sandbox(OPENAI_API_KEY="sk-test-sandbox", OPENAI_BASE_URL=server.url + "/v1") as running:
            yield running, openai


@pytest.fixture
def page(browser: Browser, gpt_sandbox: tuple[Sandbox, OpenAIStandIn]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    opened.goto(gpt_sandbox[0].url + "/")
    expect(opened.locator("#connection")).to_have_attribute("data-state", "live")
    yield opened
    context.close()


def bot_message(page: Page, name: str) -> Any:
    return page.locator(".message.from-bot").filter(has=page.locator(".name", has_text=name)).last


def test_slash_opens_the_command_autocomplete(page: Page) -> None:
    composer = page.locator("#input")
    composer.press_sequentially("/")
    menu = page.locator("#autocomplete")
    expect(menu).to_be_visible()
    expect(menu.locator(".option-name")).to_have_text(["/gpt", "/echo"])
    expect(menu.locator(".option-args")).to_have_text(["[question]", "[text]"])
    expect(menu.locator(".option-bot")).to_have_text(["ChatGPT bot", "Echo bot"])
    composer.press_sequentially("e")
    expect(menu.locator(".option-name")).to_have_text(["/echo"])
    expect(menu.locator(".option-description")).to_have_text(["Repeats what you say, as a bot"])
    composer.press("Escape")
    expect(menu).to_be_hidden()
    composer.press("Backspace")
    expect(menu.locator(".option")).to_have_count(2)  # typing again reopens it
    composer.press("ArrowDown")
    expect(menu.locator('.option[aria-selected="true"]')).to_contain_text("/echo")
    # While the list is open, Enter picks (and the note under the composer says so) ...
    expect(page.locator("#note-picking")).to_contain_text("Enter or Tab to pick")
    expect(page.locator("#note-sending")).to_be_hidden()
    composer.press("Tab")
    expect(composer).to_have_value("/echo ")
    expect(menu).to_be_hidden()
    # ... and once it is closed, Enter sends, as the note then says.
    expect(page.locator("#note-sending")).to_contain_text("Enter to send")
    expect(page.locator("#note-picking")).to_be_hidden()


def test_a_conversation_with_echo_and_a_streamed_gpt_answer(
    page: Page, gpt_sandbox: tuple[Sandbox, OpenAIStandIn]
) -> None:
    _, openai = gpt_sandbox
    # A pause first (the bot is thinking), then the answer a few bytes per write ("awkward"),
    # so it trickles in over a second or two and the page shows it growing.
    openai.chats.append(Stream(pieces(ANSWER), stall=1.0, awkward=True))
    page.evaluate(RECORDER)
    composer = page.locator("#input")

    composer.press_sequentially("/echo hello")
    composer.press("Enter")
    echo = bot_message(page, "Echo bot")
    expect(echo.locator(".text")).to_have_text("hello")
    expect(echo.locator(".badge").first).to_have_text("bot")

    composer.press_sequentially("/gpt what is a vector clock?")
    composer.press("Enter")
    answer = bot_message(page, "ChatGPT bot")
    expect(answer).not_to_have_class(re.compile(r"\bgenerating\b"), timeout=30_000)
    expect(answer.locator(".text strong")).to_have_text("vector clock")
    expect(answer.locator(".text pre code")).to_contain_text("clock[me] += 1")
    final = answer.locator(".text").text_content()
    assert final.startswith("A vector clock is a list of counters") and final.endswith("the events were concurrent.")

    shown = page.evaluate("window.shown")
    assert any("ChatGPT bot is thinking…" in s["indicator"] for s in shown), shown
    assert any("ChatGPT bot is writing…" in s["indicator"] for s in shown), shown
    # While generating, the text is shown part-written, growing in several steps.
    growing = {s["text"] for s in shown if s["generating"] and s["text"] and len(s["text"]) < len(final)}
    assert len(growing) > 1, shown
    expect(page.locator("#indicator")).to_be_hidden()

    screenshot = os.environ.get("SLASHBOTS_SANDBOX_SCREENSHOT")
    if screenshot:
        page.locator("#input").blur()
        page.screenshot(path=str(ROOT / screenshot))


def test_an_unknown_command_shows_only_for_its_sender(page: Page) -> None:
    composer = page.locator("#input")
    composer.press_sequentially("/echo before the typo")
    composer.press("Enter")
    composer.press_sequentially("/nope hi")
    composer.press("Enter")
    notice = page.locator(".notice").filter(has_text="/nope is not a command")
    expect(notice).to_contain_text("Only visible to you")
    before = bot_message(page, "Echo bot").filter(has_text="before the typo")
    expect(before).to_be_visible()

    page.get_by_role("radio", name="Bob").click()
    expect(page.locator("#input")).to_have_attribute("placeholder", "Message #general as Bob")
    expect(before).to_be_visible()  # the switch empties the view: this is Bob's, loaded afresh
    expect(notice).to_have_count(0)
    page.get_by_role("radio", name="Alice").click()
    expect(notice).to_have_count(1)


# ---- conversations on the page: @ mentions, threads, the stop button ----------------------------


def mention(page: Page, typed: str, pick: str, text: str, composer: str = "#input") -> None:
    """Type "@" and ``typed``, pick ``pick`` from the list, write ``text`` after it and send."""
    box = page.locator(composer)
    box.press_sequentially(f"@{typed}")
    menu = page.locator("#autocomplete" if composer == "#input" else "#thread-autocomplete")
    menu.locator(".option-name", has_text=pick).click()
    expect(box).to_have_value(f"{pick} ")
    box.press_sequentially(text)
    box.press("Enter")


@pytest.mark.slow
def test_at_suggests_the_channels_members_and_a_picked_mention_is_answered(page: Page) -> None:
    composer = page.locator("#input")
    composer.press_sequentially("@")
    menu = page.locator("#autocomplete")
    expect(menu).to_be_visible()
    # Members, bots first (the bots joined the sandbox's channels); never oneself.
    expect(menu.locator(".option-name")).to_have_text(["@ChatGPT bot", "@Echo bot", "@Bob"])
    composer.press_sequentially("ec")
    expect(menu.locator(".option-name")).to_have_text(["@Echo bot"])
    composer.press("Enter")
    expect(composer).to_have_value("@Echo bot ")
    expect(menu).to_be_hidden()
    composer.press_sequentially("hello from a mention")
    composer.press("Enter")
    answer = bot_message(page, "Echo bot").filter(has_text="hello from a mention")
    expect(answer.locator(".text")).to_have_text("hello from a mention")  # the mention itself taken out
    # Typed by hand, with nothing picked, "@Echo bot" is only text: no mention, no answer (as in Stream).
    composer.press_sequentially("@Echo bot")
    composer.press("Escape")
    composer.press_sequentially(" typed by hand")
    composer.press("Enter")
    expect(page.locator(".message.from-me").last.locator(".text")).to_have_text("@Echo bot typed by hand")
    composer.press_sequentially("/echo after")
    composer.press("Enter")
    expect(bot_message(page, "Echo bot").locator(".text")).to_have_text("after")
    expect(page.locator(".message.from-bot .text", has_text="typed by hand")).to_have_count(0)


@pytest.mark.slow
def test_a_thread_shows_its_replies_and_the_bot_follows_up_there(
        page: Page, gpt_sandbox: tuple[Sandbox, OpenAIStandIn]) -> None:
    _, openai = gpt_sandbox
    openai.chats.extend([Stream(["A vector clock is a list of counters."]), Stream(["A Lamport clock is one counter."])])
    mention(page, "Chat", "@ChatGPT bot", "what is a vector clock?")
    answer = page.locator("#messages .message.from-bot").filter(has_text="A vector clock is a list of counters.")
    expect(answer).not_to_have_class(re.compile(r"\bgenerating\b"))
    answer.hover()
    answer.get_by_role("button", name="Reply in thread").click()
    thread = page.locator("#thread")
    expect(thread).to_be_visible()
    expect(thread.locator(".message").first.locator(".text")).to_have_text("A vector clock is a list of counters.")
    reply = page.locator("#thread-input")
    reply.press_sequentially("and a Lamport clock?")
    reply.press("Enter")
    follow_up = thread.locator(".message.from-bot").last
    expect(follow_up.locator(".text")).to_have_text("A Lamport clock is one counter.")
    expect(follow_up).not_to_have_class(re.compile(r"\bgenerating\b"))
    expect(thread.locator(".message")).to_have_count(3)  # the parent, the follow-up, the answer
    expect(answer.locator(".replies-link")).to_have_text("2 replies")
    expect(page.locator("#messages .text", has_text="and a Lamport clock?")).to_have_count(0)  # only in the thread
    asked = [m["content"] for m in openai.bodies("/chat/completions")[-1]["messages"] if m["role"] != "system"]
    assert asked[-3:] == ["what is a vector clock?", "A vector clock is a list of counters.", "and a Lamport clock?"]
    page.locator("#thread-close").click()
    expect(thread).to_be_hidden()
    answer.locator(".replies-link").click()  # and open again, from the count
    expect(thread.locator(".message")).to_have_count(3)


@pytest.mark.slow
def test_the_stop_button_stops_a_generating_answer_where_it_stands(
        page: Page, gpt_sandbox: tuple[Sandbox, OpenAIStandIn]) -> None:
    _, openai = gpt_sandbox
    slow = Stream([f"word{n} " for n in range(400)], pace=0.05)
    openai.chats.append(slow)
    mention(page, "Chat", "@ChatGPT bot", "write me an essay")
    essay = bot_message(page, "ChatGPT bot").filter(has_text="word5")
    stop = essay.get_by_role("button", name="Stop")
    expect(stop).to_be_visible()
    expect(page.locator("#indicator")).to_contain_text("ChatGPT bot is writing")
    stop.click()
    expect(essay).not_to_have_class(re.compile(r"\bgenerating\b"))
    expect(essay.get_by_role("button", name="Stop")).to_have_count(0)
    expect(page.locator("#indicator")).to_be_hidden()
    shown = essay.locator(".text").text_content()
    assert "word399" not in shown
    slow.hung_up.wait(10)
    assert slow.hung_up.is_set()  # the model request was cancelled, not left to run
    page.reload()  # what Stream holds is what was shown
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(bot_message(page, "ChatGPT bot").filter(has_text="word5").locator(".text")).to_have_text(shown)
