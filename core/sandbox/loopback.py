"""Serve an ASGI app on 127.0.0.1 from a background thread.

Tests and the sandbox need real sockets (the Stream SDK and webhook callers speak HTTP,
not ASGI), but they must not block the caller's own event loop. So the server gets a
thread and an event loop of its own, and a port the OS picked, so runs never collide.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn


def bind_loopback(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A socket bound to ``port``, or to a free port the OS picked. Binding before serving means
    the URL is known (and the port reserved) up front, e.g. to hand an app its own public URL."""
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted connections only when
    # the proto says TCP; with proto 0, Nagle's algorithm adds ~40 ms to every keep-alive request.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class LoopbackServer:
    """Run `app` with uvicorn on a free loopback port until `stop()`.

    >>> with LoopbackServer(app) as server:
    ...     httpx.get(server.url + "/health")
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        sock: socket.socket | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        """`sock`: serve on this already-bound socket (see `bind_loopback`) instead of a new one."""
        self.app = app
        self.host = sock.getsockname()[0] if sock is not None else host
        self.startup_timeout = startup_timeout
        self._socket: socket.socket | None = sock
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("server not started")
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. http://127.0.0.1:54321."""
        return f"http://{self.host}:{self.port}"

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The server's event loop, for code that must run next to the app (e.g. queues)."""
        if self._loop is None:
            raise RuntimeError("server not started")
        return self._loop

    def start(self) -> LoopbackServer:
        """Start serving; return once the port accepts connections."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        # Bound before the thread starts, so the port is known at once and no other
        # process can take it between picking and listening.
        if self._socket is None:
            self._socket = bind_loopback(self.host)
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="auto",
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"loopback:{self.port}", daemon=True)
        self._thread.start()
        self._wait_until_accepting()
        return self

    def stop(self) -> None:
        """Ask uvicorn to finish in-flight requests and exit, then join the thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._thread = None
        self._server = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        assert self._server is not None and self._socket is not None
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._server.serve(sockets=[self._socket]))
        except BaseException as exc:  # uvicorn calls sys.exit() when lifespan startup fails
            self._error = exc
        finally:
            loop.close()

    def _wait_until_accepting(self) -> None:
        assert self._server is not None and self._thread is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if not self._thread.is_alive():
                raise RuntimeError(f"server thread exited during startup: {self._error!r}")
            if self._server.started and self._accepts_connections():
                return
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"server did not start within {self.startup_timeout} s")

    def _accepts_connections(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False
