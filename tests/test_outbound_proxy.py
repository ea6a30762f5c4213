"""Every call slashbots makes goes through the proxy HTTPS_PROXY / HTTP_PROXY name, and none when NO_PROXY covers it.

A whole command's round trip with the shipped bots.yaml: the sync at start (the stream-chat
SDK), the /gpt reply's history read (the SDK), its writes (core/http_client.py) and the
ChatGPT provider's moderation and chat calls (httpx). slashbots is given Stream's and
OpenAI's URLs under names that resolve nowhere but in the test's proxy (``*.proxied.test``;
``.test`` is reserved and never resolves), so a call that bypassed the proxy could not have
reached the stand-ins at all, and the round trip would fail. Over https the proxy sees only
CONNECT tunnels, so the stand-ins sit behind TLS fronts that record where each connection came
from: every one must be a connection the proxy opened.

The test's own calls (its user typing the command with the SDK, the readiness probe, the
Stream stand-in calling the webhook) go to 127.0.0.1 directly: NO_PROXY=127.0.0.1 covers the
probe, the others use no proxy settings. In the NO_PROXY test the same URLs name
``localhost`` instead, which NO_PROXY covers, and the proxy must see nothing.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest
import trustme

from slashbots.app import create_app
from slashbots.config import load_config
from slashbots.plugins.chatgpt import ChatGPT
from slashbots.sandbox.loopback import LoopbackServer, bind_loopback
from slashbots.stream import StreamError, StreamGateway
from tests.chatgpt.helpers import TEST_KEY, answer, command
from tests.conftest import API_KEY, API_SECRET, Stream, final_reply, send, wait_until_ready
from tests.support.openai_standin import OpenAIStandIn
from tests.support.openai_standin import Stream as Answer
from tests.support.proxy import ForwardingProxy, TLSFront

SHIPPED = Path(__file__).resolve().parents[1] / "bots.yaml"
OPENAI_KEY = "sk-test-0123456789abcdef"
STREAM_HOST, OPENAI_HOST = "stream.proxied.test", "openai.proxied.test"
USER, PASSWORD = "bots", "p@ss:w0rd/secret"  # characters that must be percent-encoded in the URL
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")

# What a /gpt command makes slashbots ask for, by (host, method, path): the sync at start, then the reply.
SYNC = {("stream", "POST", "/users"), ("stream", "GET", "/commands"), ("stream", "POST", "/commands"),
        ("stream", "GET", "/channeltypes/messaging"), ("stream", "PUT", "/channeltypes/messaging"),
        ("stream", "GET", "/app"), ("stream", "PATCH", "/app")}
REPLY = {("stream", "POST", "/channels/messaging/general/query"), ("stream", "POST", "/channels/messaging/general/message"),
         ("stream", "POST", "/channels/messaging/general/event"), ("stream", "PUT", "/messages/*"),
         ("openai", "POST", "/v1/moderations"), ("openai", "POST", "/v1/chat/completions")}


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the variables it means; none leak in from the machine running the tests."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A server context for the stand-ins' names, from a CA every client in this process trusts."""
    authority = trustme.CA()
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(STREAM_HOST, OPENAI_HOST, "localhost").configure_cert(context)
    return context


@pytest.fixture
def openai() -> Iterator[tuple[OpenAIStandIn, int]]:
    standin = OpenAIStandIn()
    with LoopbackServer(standin.app) as server:
        yield standin, server.port


@contextlib.contextmanager
def origins(scheme: str, stream: Stream, openai_port: int, tls: ssl.SSLContext,
            hosts: tuple[str, str]) -> Iterator[tuple[str, str, list[TLSFront]]]:
    """Stream's and OpenAI's base URLs under ``hosts``: the stand-ins themselves, or TLS fronts for them."""
    stream_port = int(stream.url.rsplit(":", 1)[1])
    with contextlib.ExitStack() as fronts:
        if scheme == "https":
            started = [fronts.enter_context(TLSFront(port, tls)) for port in (stream_port, openai_port)]
            ports = [front.port for front in started]
        else:
            started, ports = [], [stream_port, openai_port]
        yield f"{scheme}://{hosts[0]}:{ports[0]}", f"{scheme}://{hosts[1]}:{ports[1]}/v1", started


@contextlib.contextmanager
def shipped(stream_url: str, openai_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """slashbots serving the shipped bots.yaml against these URLs, synced; yields its own URL."""
    monkeypatch.setenv("STREAM_API_KEY", API_KEY)
    monkeypatch.setenv("STREAM_API_SECRET", API_SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", openai_url)
    sock = bind_loopback()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = create_app(load_config(SHIPPED), stream_url=stream_url, public_url=url)
    with LoopbackServer(app, sock=sock):
        wait_until_ready(url, app=app)
        yield url


async def ask(stream: Stream, chat, openai: OpenAIStandIn) -> None:
    openai.chats.append(Answer(["Through ", "the proxy."]))
    await send(chat, "/gpt are you behind a proxy?")
    [reply] = await final_reply(stream.standin, "chatgpt-bot")
    assert reply["text"] == "Through the proxy."
    assert openai.paths == ["/v1/moderations", "/v1/chat/completions"]


def kind(target: str, ports: dict[int, str]) -> tuple[str, str]:
    """(``stream`` or ``openai``, path) for an absolute-form target; message ids become ``*``."""
    url = urlsplit(target)
    path = "/messages/*" if url.path.startswith("/messages/") else url.path
    return ports[url.port], path


@pytest.mark.parametrize("scheme", ["https", "http"])
async def test_every_call_of_a_command_goes_through_the_proxy(scheme, stream, openai, chat, tls, monkeypatch):
    standin, openai_port = openai
    with ForwardingProxy({STREAM_HOST: "127.0.0.1", OPENAI_HOST: "127.0.0.1"}, (USER, PASSWORD)) as proxy, \
            origins(scheme, stream, openai_port, tls, (STREAM_HOST, OPENAI_HOST)) as (stream_url, openai_url, fronts):
        monkeypatch.setenv("HTTPS_PROXY" if scheme == "https" else "HTTP_PROXY", proxy.url_with(USER, PASSWORD))
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the test's readiness probe goes straight to slashbots
        with shipped(stream_url, openai_url, monkeypatch):
            await ask(stream, chat, standin)

        assert proxy.passed, "nothing went through the proxy"
        assert all(p.answered < 400 for p in proxy.passed), [p for p in proxy.passed if p.answered >= 400]
        if scheme == "https":
            assert {p.method for p in proxy.passed} == {"CONNECT"}
            assert {p.target.rsplit(":", 1)[0] for p in proxy.passed} == {STREAM_HOST, OPENAI_HOST}
            for front in fronts:  # every connection that reached a stand-in was one the proxy opened
                assert front.peers and set(front.peers) <= proxy.upstreams
        else:
            ports = {int(stream_url.rsplit(":", 1)[1]): "stream", int(openai_url.split(":")[2].split("/")[0]): "openai"}
            seen = {(host, p.method, path) for p in proxy.passed for host, path in [kind(p.target, ports)]}
            assert seen == SYNC | REPLY


async def test_no_proxy_covering_the_hosts_sends_every_call_direct(stream, openai, chat, tls, monkeypatch):
    standin, openai_port = openai
    with ForwardingProxy() as proxy, \
            origins("https", stream, openai_port, tls, ("localhost", "localhost")) as (stream_url, openai_url, fronts):
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("https_proxy", proxy.url)
        monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
        with shipped(stream_url, openai_url, monkeypatch):
            await ask(stream, chat, standin)
        assert proxy.passed == []
        assert all(front.peers for front in fronts)


async def test_the_proxy_password_appears_in_no_error_and_no_log(stream, tls, monkeypatch, caplog):
    """A proxy that refuses the credentials (407), on both paths to Stream and over both schemes."""
    caplog.set_level(logging.DEBUG)
    with ForwardingProxy({STREAM_HOST: "127.0.0.1"}, (USER, "the-right-one")) as proxy:
        for scheme in ("https", "http"):
            monkeypatch.setenv(f"{scheme.upper()}_PROXY", proxy.url_with(USER, PASSWORD))
            gateway = StreamGateway(API_KEY, API_SECRET, base_url=f"{scheme}://{STREAM_HOST}:1", timeout=5)
            errors = []
            for call in (gateway.list_commands(), gateway.send_message("messaging:general", "bot", {"text": "hi"})):
                with pytest.raises(StreamError) as caught:
                    await call
                errors.append(str(caught.value))
            await gateway.close()
            assert all("proxy" in error for error in errors), errors
            for text in [*errors, caplog.text, repr(gateway.proxy), str(gateway.proxy)]:
                assert PASSWORD not in text and "p%40ss" not in text, text
    assert {p.answered for p in proxy.passed} == {407}


@pytest.mark.parametrize("scheme", ["https", "http"])
async def test_a_refusing_proxy_is_named_to_the_user_without_its_password_or_the_api_key(scheme, tls, monkeypatch, caplog):
    """The ChatGPT provider's calls: 407 to CONNECT (httpx's ProxyError) or to a plain request (a 407 answer)."""
    caplog.set_level(logging.DEBUG)
    with ForwardingProxy({OPENAI_HOST: "127.0.0.1"}, (USER, "the-right-one")) as proxy:
        monkeypatch.setenv(f"{scheme.upper()}_PROXY", proxy.url_with(USER, PASSWORD))
        provider = ChatGPT({"base_url": f"{scheme}://{OPENAI_HOST}:1/v1", "api_key": TEST_KEY, "max_retries": 0})
        pieces, error = await answer(provider, command("are you there?"))
        await provider.aclose()
    assert pieces == [] and error is not None
    assert "proxy" in str(error) and "HTTPS_PROXY" in str(error), str(error)
    for text in (str(error), caplog.text):
        assert PASSWORD not in text and "p%40ss" not in text and TEST_KEY not in text, text
    assert [p.answered for p in proxy.passed] == [407]  # moderation, refused; the model was never asked
