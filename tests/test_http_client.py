"""slashbots.http_client against a real HTTP/1.1 server on loopback that misbehaves on request, directly and through a proxy."""

from __future__ import annotations

import asyncio
import ssl
from typing import Awaitable, Callable

import pytest
import trustme

from slashbots.http_client import HTTPClient, HTTPError
from slashbots.proxies import Proxy, proxy_for
from tests.support.proxy import ForwardingProxy

Reply = Callable[[asyncio.StreamWriter, bytes, bytes], Awaitable[bool]]  # -> keep the connection open?


class Server:
    """Answers each request with ``reply``; records every request and connection it saw."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[tuple[bytes, bytes]] = []  # (head, body)
        self.connections = 0
        self.server: asyncio.AbstractServer | None = None

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=ssl_context)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                body = await reader.readexactly(length)
                self.requests.append((head, body))
                if not await self.reply(writer, head, body):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def answer(status: int, body: bytes, *extra: str) -> bytes:
    headers = "".join(f"{line}\r\n" for line in extra)
    return b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n%s\r\n%s" % (status, len(body), headers.encode(), body)


async def echo(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> bool:
    writer.write(answer(200, body, "Content-Type: application/json"))
    return True


@pytest.fixture
async def serve():
    servers: list[Server] = []

    async def start(reply: Reply = echo, ssl_context: ssl.SSLContext | None = None) -> tuple[Server, int]:
        server = Server(reply)
        servers.append(server)
        return server, await server.start(ssl_context)

    yield start
    for server in servers:
        await server.stop()


async def test_requests_share_one_kept_alive_connection_and_carry_the_fixed_headers(serve):
    server, port = await serve()
    client = HTTPClient(f"http://127.0.0.1:{port}/base", {"Authorization": "token"}, timeout=5)
    first = await client.request("POST", "/one?x=1", b'{"a":1}')
    second = await client.request("PUT", "/two", b'{"b":2}')
    await client.close()

    assert (first.status, first.body, second.body) == (200, b'{"a":1}', b'{"b":2}')
    assert first.headers["content-type"] == "application/json"
    assert server.connections == 1
    head = server.requests[0][0].decode()
    assert head.startswith("POST /base/one?x=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{port}\r\n" in head and "Authorization: token\r\n" in head
    assert server.requests[1][0].startswith(b"PUT /base/two HTTP/1.1\r\n")


async def test_a_chunked_answer_is_put_together(serve):
    async def chunked(writer, head, body):
        writer.write(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"ok\r\n5\r\n\":1}\n\r\n0\r\n\r\n")
        return True

    _, port = await serve(chunked)
    client = HTTPClient(f"http://127.0.0.1:{port}", {}, timeout=5)
    response = await client.request("POST", "/", b"{}")
    again = await client.request("POST", "/", b"{}")
    await client.close()
    assert (response.status, response.body, again.body) == (201, b'{"ok":1}\n', b'{"ok":1}\n')


async def test_a_connection_the_server_closed_while_idle_is_replaced_and_the_request_sent_once(serve):
    async def once_then_close(writer, head, body):
        writer.write(answer(200, body))
        await writer.drain()
        return False  # the server hangs up after every answer, as at its keep-alive timeout

    server, port = await serve(once_then_close)
    client = HTTPClient(f"http://127.0.0.1:{port}", {}, timeout=5)
    await client.request("POST", "/", b"1")
    await asyncio.sleep(0.05)  # the close reaches the idle connection
    second = await client.request("POST", "/", b"2")
    await client.close()
    assert second.body == b"2"
    assert [body for _, body in server.requests] == [b"1", b"2"]
    assert server.connections == 2


async def test_a_stale_connection_found_only_on_use_is_retried_on_a_fresh_one(serve):
    closing: list[asyncio.StreamWriter] = []

    async def keep(writer, head, body):
        writer.write(answer(200, body))
        closing.append(writer)
        return True

    server, port = await serve(keep)
    client = HTTPClient(f"http://127.0.0.1:{port}", {}, timeout=5)
    await client.request("POST", "/", b"1")
    # The server drops the socket without a FIN reaching the client's reader first: the client
    # learns of it only when it writes the next request there.
    closing[0].transport.abort()
    second = await client.request("POST", "/", b"2")
    await client.close()
    assert second.body == b"2"
    assert server.connections == 2


async def test_a_connection_lost_mid_answer_is_an_error_and_not_repeated(serve):
    async def half(writer, head, body):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial")
        await writer.drain()
        return False

    server, port = await serve(half)
    client = HTTPClient(f"http://127.0.0.1:{port}", {}, timeout=5)
    with pytest.raises(HTTPError, match="closed before the answer was complete"):
        await client.request("POST", "/", b"x")
    await client.close()
    assert len(server.requests) == 1


async def test_a_garbled_answer_is_an_error(serve):
    async def garbage(writer, head, body):
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        return True

    _, port = await serve(garbage)
    client = HTTPClient(f"http://127.0.0.1:{port}", {}, timeout=5)
    with pytest.raises(HTTPError, match="unreadable answer"):
        await client.request("POST", "/", b"x")
    await client.close()


async def test_a_timed_out_request_never_leaves_its_late_answer_for_the_next_one(serve):
    async def slow_first(writer, head, body):
        if body == b"slow":
            await asyncio.sleep(0.3)
        writer.write(answer(200, body))
        return True

    server, port = await serve(slow_first)
    client = HTTPClient(f"http://127.0.0.1:{port}", {}, timeout=0.1)
    with pytest.raises(TimeoutError):
        await client.request("POST", "/", b"slow")
    await asyncio.sleep(0.3)  # the late answer arrives (on a connection the client has dropped)
    fast = await client.request("POST", "/", b"fast")
    await client.close()
    assert fast.body == b"fast"
    assert server.connections == 2


async def test_connection_close_in_the_answer_is_honoured(serve):
    async def close_each(writer, head, body):
        writer.write(answer(200, body, "Connection: close"))
        await writer.drain()
        return False

    server, port = await serve(close_each)
    client = HTTPClient(f"http://127.0.0.1:{port}", {}, timeout=5)
    for n in range(3):
        assert (await client.request("POST", "/", b"%d" % n)).body == b"%d" % n
    await client.close()
    assert server.connections == 3


async def test_at_most_max_connections_are_open_at_once(serve):
    busy = 0
    most = 0

    async def slow(writer, head, body):
        nonlocal busy, most
        busy += 1
        most = max(most, busy)
        await asyncio.sleep(0.05)
        busy -= 1
        writer.write(answer(200, body))
        return True

    server, port = await serve(slow)
    client = HTTPClient(f"http://127.0.0.1:{port}", {}, timeout=5, max_connections=2)
    bodies = await asyncio.gather(*(client.request("POST", "/", b"%d" % n) for n in range(6)))
    await client.close()
    assert [response.body for response in bodies] == [b"%d" % n for n in range(6)]
    assert most == 2 and server.connections == 2


async def test_https_checks_the_certificate_against_the_host_name(serve, monkeypatch, tmp_path):
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_context)
    _, port = await serve(echo, server_context)
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # the client trusts the system's store, this CA here

    client = HTTPClient(f"https://localhost:{port}", {}, timeout=5)
    assert (await client.request("POST", "/", b"secret")).body == b"secret"
    await client.close()

    wrong_name = HTTPClient(f"https://127.0.0.1:{port}", {}, timeout=5)
    with pytest.raises(ssl.SSLCertVerificationError):
        await wrong_name.request("POST", "/", b"x")
    await wrong_name.close()


def test_only_http_urls_are_taken():
    with pytest.raises(ValueError, match="not an http"):
        HTTPClient("ftp://example.com", {}, timeout=1)


# -- through a proxy --------------------------------------------------------------------------------
# The origin's name resolves only in the test's proxy, so a request that reached it went through the proxy.

ORIGIN = "origin.proxied.test"
PASSWORD = "p@ss:word"


def proxy_of(url: str, monkeypatch: pytest.MonkeyPatch, proxy: ForwardingProxy, password: str = PASSWORD) -> Proxy:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):  # none of the machine's settings, in either case
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HTTPS_PROXY" if url.startswith("https") else "HTTP_PROXY", proxy.url_with("bots", password))
    found = proxy_for(url)
    assert found is not None
    return found


@pytest.fixture
def tls(monkeypatch, tmp_path) -> ssl.SSLContext:
    """A server context for ORIGIN, from a CA the client trusts."""
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(ORIGIN).configure_cert(context)
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    return context


async def test_plain_http_goes_through_the_proxy_in_absolute_form_with_its_credentials(serve, monkeypatch):
    server, port = await serve()
    with ForwardingProxy({ORIGIN: "127.0.0.1"}, ("bots", PASSWORD)) as proxy:
        url = f"http://{ORIGIN}:{port}/base"
        client = HTTPClient(url, {"Authorization": "token"}, timeout=5, proxy=proxy_of(url, monkeypatch, proxy))
        first = await client.request("POST", "/one?x=1", b'{"a":1}')
        second = await client.request("PUT", "/two", b'{"b":2}')
        await client.close()
    assert (first.status, first.body, second.body) == (200, b'{"a":1}', b'{"b":2}')
    assert [(p.method, p.target, p.answered) for p in proxy.passed] == [
        ("POST", f"http://{ORIGIN}:{port}/base/one?x=1", 200), ("PUT", f"http://{ORIGIN}:{port}/base/two", 200)]
    assert all(p.authorization == proxy_for(url).authorization for p in proxy.passed)
    head = server.requests[0][0].decode()
    assert head.startswith("POST /base/one?x=1 HTTP/1.1\r\n") and f"Host: {ORIGIN}:{port}\r\n" in head
    assert "Authorization: token\r\n" in head and "proxy-authorization" not in head.lower()


async def test_https_goes_through_a_connect_tunnel_kept_alive_and_checks_the_origins_certificate(serve, monkeypatch, tls):
    server, port = await serve(echo, tls)
    with ForwardingProxy({ORIGIN: "127.0.0.1", "other.proxied.test": "127.0.0.1"}, ("bots", PASSWORD)) as proxy:
        url = f"https://{ORIGIN}:{port}"
        client = HTTPClient(url, {}, timeout=5, proxy=proxy_of(url, monkeypatch, proxy))
        bodies = [(await client.request("POST", "/", b"%d" % n)).body for n in range(3)]
        await client.close()

        wrong_name = HTTPClient(f"https://other.proxied.test:{port}", {}, timeout=5, proxy=proxy_for(url))
        with pytest.raises(ssl.SSLCertVerificationError):
            await wrong_name.request("POST", "/", b"x")
        await wrong_name.close()
    assert bodies == [b"0", b"1", b"2"]
    assert [(p.method, p.target, p.answered) for p in proxy.passed[:1]] == [("CONNECT", f"{ORIGIN}:{port}", 200)]
    assert proxy.passed[0].authorization == proxy_for(url).authorization
    assert len(proxy.passed) == 2 and server.connections == 1  # one tunnel for three requests; one refused by TLS


@pytest.mark.parametrize("scheme", ["https", "http"])
async def test_a_proxy_that_refuses_the_credentials_is_an_error_without_them(serve, monkeypatch, tls, scheme):
    server, port = await serve(echo, tls if scheme == "https" else None)
    with ForwardingProxy({ORIGIN: "127.0.0.1"}, ("bots", "another")) as proxy:
        url = f"{scheme}://{ORIGIN}:{port}"
        client = HTTPClient(url, {}, timeout=5, proxy=proxy_of(url, monkeypatch, proxy))
        if scheme == "https":
            with pytest.raises(HTTPError, match=f"the proxy at {proxy.url} refused a tunnel to {ORIGIN}:{port}: .*407") as caught:
                await client.request("POST", "/", b"x")
            assert PASSWORD not in str(caught.value) and "p%40ss" not in str(caught.value)
        else:  # the proxy's answer, for the caller to judge (core/stream.py words a 407)
            assert (await client.request("POST", "/", b"x")).status == 407
        await client.close()
    assert server.requests == []


async def test_an_unreachable_proxy_is_an_os_error(monkeypatch):
    with ForwardingProxy() as gone:
        pass  # its port is closed now
    for url in (f"https://{ORIGIN}", f"http://{ORIGIN}"):
        client = HTTPClient(url, {}, timeout=5, proxy=proxy_of(url, monkeypatch, gone))
        with pytest.raises(OSError) as caught:
            await client.request("POST", "/", b"x")
        assert PASSWORD not in str(caught.value)
        await client.close()
