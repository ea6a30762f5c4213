"""A lean HTTP/1.1 client for one origin: pooled keep-alive connections, parsed by httptools.

Every reply is made of Stream writes (a placeholder, patches, the final text, typing events),
and a general-purpose client spends most of a write's CPU on machinery one JSON API never uses
(cookie jars, redirects, tracing, URL building and header merging per request). Measured
against the best library options in one run (benchmarks/http_clients.py, BENCHMARKS.md
section 7: TLS, answers after 20 ms, CPU of the calling process per write less that of the
same schedule without writes), at 1,000 commands/s (3,000 writes/s) this client, proxy support
included, took 147 µs a write, 0.44 of a core; a lean aiohttp ClientSession 404 µs, 1.21
cores, more than the one a process has (it fell behind, to 1,717 writes/s); httpx 10.7 ms.
That saves 0.77 of a core where the rule for keeping hand-written code asked for a quarter.
At Stream's default limit (1,000 sends and 1,000 updates a minute, 33 writes/s) it is 527
against 1,021 µs a write: 0.017 of a core, which alone would not pay for this module.

It speaks only what Stream's REST API needs: one origin over TCP or TLS, optionally through an
HTTP proxy (absolute-form requests for ``http://``, a CONNECT tunnel then TLS for
``https://``, Proxy-Authorization from the proxy URL's credentials, which appear in no
message), bodies sent with Content-Length, answers framed by Content-Length or chunked
encoding.

Every request it sends must be safe to repeat: a pooled connection the server closed while
it sat idle is only found out by using it, and that request is sent again on a fresh one.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import NamedTuple
from urllib.parse import urlsplit

import httptools

from slashbots.proxies import Proxy


class Response(NamedTuple):
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


class HTTPError(OSError):
    """The server broke the protocol or closed the connection before answering."""


class _Connection(asyncio.Protocol):
    """One connection, one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[Response] | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self.received = False  # any byte of the current answer: then it must not be sent again
        self.reusable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, data: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self.received = False
        self.transport.write(data)
        return self._answer

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HTTPError(f"unreadable answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(HTTPError("connection closed before the answer was complete"))

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, error: HTTPError) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)
        self.close()

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        response = Response(self._parser.get_status_code(), self._headers, b"".join(self._body))
        self.reusable = self._parser.should_keep_alive()
        self._headers, self._body = {}, []
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(response)


class _Tunnel(asyncio.Protocol):
    """A connection to a proxy until it answers CONNECT; then the connection carries TLS to the origin."""

    def __init__(self) -> None:
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._head = b""

    def data_received(self, data: bytes) -> None:
        self._head += data
        if b"\r\n\r\n" in self._head and not self.answer.done():
            # Nothing may follow the answer: the origin speaks only after our TLS hello.
            self.answer.set_result(self._head)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(HTTPError("the proxy closed the connection before answering CONNECT"))


class HTTPClient:
    """Requests to one origin (``base_url``), each with the same extra ``headers``, through ``proxy`` if given."""

    def __init__(self, base_url: str, headers: dict[str, str], *, timeout: float, max_connections: int = 100,
                 proxy: Proxy | None = None) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._host = url.hostname
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if url.scheme == "https" else None
        self._proxy = proxy
        self._prefix = url.path.rstrip("/")
        fixed = {"Host": url.netloc, "Accept": "application/json", "Content-Type": "application/json", **headers}
        if proxy is not None and self._ssl is None:
            # Plain HTTP through a proxy: every request names the whole URL and shows the proxy its credentials.
            self._prefix = f"http://{url.netloc}{self._prefix}"
            if proxy.authorization:
                fixed["Proxy-Authorization"] = proxy.authorization
        self._head = "".join(f"{name}: {value}\r\n" for name, value in fixed.items()).encode("latin-1")
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: deque[_Connection] = deque()

    async def request(self, method: str, target: str, body: bytes = b"") -> Response:
        """``target`` is the path and query under the base URL. Raises HTTPError, OSError or TimeoutError."""
        data = b"%s %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s" % (
            method.encode(), (self._prefix + target).encode(), self._head, len(body), body,
        )
        async with asyncio.timeout(self.timeout), self._slots:
            while self._idle:
                connection = self._idle.pop()
                if connection.transport is None:
                    continue
                try:
                    return await self._exchange(connection, data)
                except HTTPError:
                    if connection.received:
                        raise
                    # Closed by the server while idle: try the next connection, or a fresh one.
            return await self._exchange(await self._connect(), data)

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        if self._proxy is None:
            _, connection = await loop.create_connection(
                _Connection, self._host, self._port, ssl=self._ssl, server_hostname=self._host if self._ssl else None,
            )
        elif self._ssl is None:
            _, connection = await loop.create_connection(_Connection, self._proxy.host, self._proxy.port)
        else:
            connection = await self._tunnel()
        return connection

    async def _tunnel(self) -> _Connection:
        """A CONNECT tunnel through the proxy to the origin, then TLS with the origin inside it."""
        assert self._proxy is not None and self._ssl is not None
        loop = asyncio.get_running_loop()
        transport, tunnel = await loop.create_connection(_Tunnel, self._proxy.host, self._proxy.port)
        try:
            authority = f"[{self._host}]:{self._port}" if ":" in self._host else f"{self._host}:{self._port}"
            auth = f"Proxy-Authorization: {self._proxy.authorization}\r\n" if self._proxy.authorization else ""
            transport.write(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{auth}\r\n".encode("latin-1"))
            head = await tunnel.answer
            status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            status = status_line.split(" ", 2)
            if len(status) < 2 or not status[0].startswith("HTTP/1.") or not status[1].startswith("2"):
                raise HTTPError(f"the proxy at {self._proxy} refused a tunnel to {authority}: {status_line[:100]}")
            if not head.endswith(b"\r\n\r\n"):
                raise HTTPError(f"the proxy at {self._proxy} sent more than its answer to CONNECT")
            connection = _Connection()
            secure = await loop.start_tls(transport, connection, self._ssl, server_hostname=self._host)
        except BaseException:
            transport.abort()
            raise
        connection.connection_made(secure)
        return connection

    async def _exchange(self, connection: _Connection, data: bytes) -> Response:
        try:
            response = await connection.send(data)
        except BaseException:
            # Timed out or cancelled mid-answer: the rest of it would confuse the next request.
            connection.close()
            raise
        if connection.reusable and connection.transport is not None:
            self._idle.append(connection)
        else:
            connection.close()
        return response

    async def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
