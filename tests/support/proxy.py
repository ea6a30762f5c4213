"""A forwarding HTTP proxy and a TLS front, on loopback, each in a thread of its own, for tests.

``ForwardingProxy`` takes absolute-form requests (``POST http://host:port/path HTTP/1.1``) and
CONNECT tunnels, as corporate egress proxies do, and records each one. It resolves host names
from its own ``hosts`` table, so a test can give slashbots URLs whose names resolve nowhere
else: whatever reached such a host went through the proxy. With ``credentials`` it answers
407 to requests without the matching Proxy-Authorization.

``TLSFront`` serves TLS on a port of its own and relays the bytes to a plain-HTTP server (the
stand-ins run without TLS), recording the address each connection came from.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Awaitable, Callable, Mapping, Self
from urllib.parse import quote, urlsplit

Address = tuple[str, int]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass(frozen=True)
class Passed:
    """One request the proxy took: a CONNECT (``target`` is ``host:port``) or an absolute-form request."""

    method: str
    target: str
    authorization: str | None  # the Proxy-Authorization header as sent
    answered: int  # 200 for a tunnel opened, 407 for missing credentials, else the origin's status line's


class _Background:
    """An asyncio server on 127.0.0.1 in a thread with its own loop; ``start()`` returns once it listens."""

    def __init__(self) -> None:
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._open_connections: dict[asyncio.Task, asyncio.StreamWriter] = {}
        self._onward: set[asyncio.StreamWriter] = set()  # connections made from here to a server

    def start(self) -> Self:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _listen(self) -> asyncio.AbstractServer:
        raise NotImplementedError

    def _serving(self, handle: Handler) -> Handler:
        """``handle`` for ``asyncio.start_server``, tracked so ``stop()`` can end kept-alive connections."""

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._open_connections[task] = writer
            try:
                await handle(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError):
                pass
            finally:
                del self._open_connections[task]
                writer.close()

        return serve

    def stop(self) -> None:
        async def shut() -> None:
            assert self._server is not None
            self._server.close()
            # Hang up rather than cancel: each handler then ends as it would when a client leaves.
            for writer in [*self._open_connections.values(), *self._onward]:
                writer.transport.abort()
            await asyncio.gather(*self._open_connections, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def _both_ways(a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                     b: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
    await asyncio.gather(_pipe(a[0], b[1]), _pipe(b[0], a[1]))


class ForwardingProxy(_Background):
    """``HTTP_PROXY=proxy.url`` (or ``proxy.url_with("user", "pass")``); ``passed`` is what went through."""

    def __init__(self, hosts: Mapping[str, str] | None = None, credentials: tuple[str, str] | None = None) -> None:
        super().__init__()
        self.hosts = dict(hosts or {})
        self.passed: list[Passed] = []
        self.upstreams: set[Address] = set()  # the local address of every connection it made onward
        self._expected = None
        if credentials is not None:
            self._expected = "Basic " + base64.b64encode(":".join(credentials).encode()).decode()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        return f"http://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}"

    async def _listen(self) -> asyncio.AbstractServer:
        return await asyncio.start_server(self._serving(self._serve), "127.0.0.1", 0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            method, target, _ = request_line.split(" ", 2)
            headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines if line]
            named = {name.lower(): value for name, value in headers}
            body = await reader.readexactly(int(named.get("content-length", 0)))
            authorization = named.get("proxy-authorization")
            if self._expected is not None and authorization != self._expected:
                self.passed.append(Passed(method, target, authorization, 407))
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\n"
                             b"Content-Length: 0\r\n\r\n")
                continue
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                upstream = await self._open(host.strip("[]"), int(port))
                self.passed.append(Passed(method, target, authorization, 200))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await _both_ways((reader, writer), upstream)
                return
            if not await self._forward(method, target, headers, body, authorization, writer):
                return

    async def _forward(self, method: str, target: str, headers: list[tuple[str, ...]], body: bytes,
                       authorization: str | None, writer: asyncio.StreamWriter) -> bool:
        """Send one absolute-form request on; relay the answer. Returns whether the client's connection lives on."""
        url = urlsplit(target)
        assert url.scheme == "http" and url.hostname, f"not an absolute-form http:// request: {target}"
        up_reader, up_writer = await self._open(url.hostname, url.port or 80)
        hop_by_hop = {"proxy-authorization", "proxy-connection", "connection", "keep-alive"}
        kept = "".join(f"{name}: {value}\r\n" for name, value in headers if name.lower() not in hop_by_hop)
        path = url.path + (f"?{url.query}" if url.query else "")
        try:
            up_writer.write(f"{method} {path} HTTP/1.1\r\n{kept}Connection: close\r\n\r\n".encode("latin-1") + body)
            head = await up_reader.readuntil(b"\r\n\r\n")
            self.passed.append(Passed(method, target, authorization, int(head.split(b" ", 2)[1])))
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), None)
            if length is None:  # streamed (chunked) until the origin closes, as it was asked to
                writer.write(head)
                await _pipe(up_reader, writer)
                return False
            writer.write(head + await up_reader.readexactly(length))
            return True
        finally:
            up_writer.close()

    async def _open(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(self.hosts.get(host, host), port)
        self.upstreams.add(writer.get_extra_info("sockname")[:2])
        self._onward.add(writer)
        return reader, writer


class TLSFront(_Background):
    """TLS on ``port``, relayed to the plain server at 127.0.0.1:``upstream``; ``peers`` are where connections came from."""

    def __init__(self, upstream: int, context: ssl.SSLContext) -> None:
        super().__init__()
        self.upstream = upstream
        self.context = context
        self.peers: list[Address] = []

    async def _listen(self) -> asyncio.AbstractServer:
        return await asyncio.start_server(self._serving(self._relay), "127.0.0.1", 0, ssl=self.context)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peers.append(writer.get_extra_info("peername")[:2])
        upstream = await asyncio.open_connection("127.0.0.1", self.upstream)
        self._onward.add(upstream[1])
        await _both_ways((reader, writer), upstream)
