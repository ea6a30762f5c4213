"""An open-loop load generator for the webhook: signed commands at a fixed rate, wrk2-style.

Request i is due at ``t0 + i / rate`` whatever happened to the requests before it, and its
latency is measured from that due time, not from when it was sent: a server that stalls is
charged for every request that waited behind the stall (no coordinated omission). Requests
go over a pool of keep-alive connections; when all are busy a new one is opened (up to
``--max-connections``, then requests wait for one, and the wait counts too).

It runs in a process of its own, writes raw HTTP/1.1 on asyncio protocols (far cheaper per
request than an HTTP client library) and signs every body before the clock starts. It prints
one JSON object: per-request latencies, outcomes, and how late it was itself in sending.

    python benchmarks/loadgen.py --url http://127.0.0.1:8000 --rate 300 --duration 20 --tag r300
    python benchmarks/loadgen.py --url http://127.0.0.1:8000 --rate 2000 --duration 5 --tag c1 --events

``--events`` posts ordinary chatter (message.new, as Stream's event webhook sends it) to /events
instead of commands to /webhook.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter, deque
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvloop  # noqa: E402

from benchmarks import webhooks  # noqa: E402
from benchmarks.stats import percentile  # noqa: E402

GRACE = 10.0  # seconds to wait for the last answers after the last send


class Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time; parses Content-Length framed responses."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.answer: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def request(self, raw: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self.answer

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        length = 0
        for line in bytes(self.buffer[:end]).lower().split(b"\r\n"):
            if line.startswith(b"content-length:"):
                length = int(line[15:])
        if len(self.buffer) < end + 4 + length:
            return
        status = int(self.buffer[9:12])
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        if self.answer is not None and not self.answer.done():
            self.answer.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_result((0, b""))
        self.transport = None


class Pool:
    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host, self.port, self.limit = host, port, limit
        self.idle: deque[Connection] = deque()
        self.waiting: deque[asyncio.Future[Connection]] = deque()
        self.opened = 0

    async def acquire(self) -> Connection:
        while self.idle:
            connection = self.idle.pop()
            if connection.transport is not None:
                return connection
        if self.opened < self.limit:
            self.opened += 1
            loop = asyncio.get_running_loop()
            _, connection = await loop.create_connection(Connection, self.host, self.port)
            return connection
        waiter: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()
        self.waiting.append(waiter)
        return await waiter

    def release(self, connection: Connection) -> None:
        if connection.transport is None:
            self.opened -= 1
            return
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self.idle.append(connection)


def outcome(status: int, body: bytes) -> str:
    """accepted, refused (an error message only the sender sees: busy, rate limited, ...) or HTTP <status>."""
    if status == 200:
        return "refused" if b'"type":"error"' in body else "accepted"
    return "no answer" if status == 0 else f"HTTP {status}"


async def run(url: str, rate: float, duration: float, tag: str, command: str, max_connections: int,
              warmup: int, events: bool = False) -> dict:
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    count = int(rate * duration)

    def request(name: str, index: int) -> bytes:
        if events:
            return webhooks.http_request(webhooks.chatter(index, tag), f"{host}:{port}", f"wh-{name}", path="/events")
        raw = webhooks.command(command, name, f"msg-{name}")
        return webhooks.http_request(raw, f"{host}:{port}", f"wh-{name}")

    requests = [request(f"{tag}-{i}", i) for i in range(count)]
    pool = Pool(host, port, max_connections)
    for i in range(warmup):  # opens a connection and wakes the server's lazy paths; not measured
        connection = await pool.acquire()
        await connection.request(request(f"{tag}-warm{i}", count + i))
        pool.release(connection)

    latencies: list[float] = [float("nan")] * count
    outcomes: Counter[str] = Counter()
    late: list[float] = []

    async def send(i: int, due: float) -> None:
        connection = await pool.acquire()
        status, body = await connection.request(requests[i])
        latencies[i] = time.monotonic() - due
        outcomes[outcome(status, body)] += 1
        pool.release(connection)

    tasks = set()
    t0 = time.monotonic() + 0.05
    i = 0
    while i < count:
        now = time.monotonic()
        while i < count and t0 + i / rate <= now:
            late.append(now - (t0 + i / rate))
            task = asyncio.create_task(send(i, t0 + i / rate))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
    sent_span = time.monotonic() - t0
    if tasks:
        await asyncio.wait(set(tasks), timeout=GRACE)
    unanswered = [index for index, value in enumerate(latencies) if value != value]  # NaN: still waiting
    outcomes["no answer"] += len(unanswered)
    for index in unanswered:  # charged at least the time they have waited so far
        latencies[index] = time.monotonic() - (t0 + index / rate)
    return {
        "rate": rate, "duration": duration, "sent": count, "t0": t0, "tag": tag,
        "achieved_rate": count / sent_span if sent_span > 0 else 0.0,
        "send_lag_p99_ms": percentile(late, 99) * 1000,
        "connections": pool.opened, "outcomes": dict(outcomes), "latencies": latencies,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, required=True, help="commands per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds")
    parser.add_argument("--tag", default="load", help="prefix of every command's args (and message id)")
    parser.add_argument("--command", default="echo")
    parser.add_argument("--max-connections", type=int, default=512)
    parser.add_argument("--warmup", type=int, default=20, help="requests sent one by one first, not measured")
    parser.add_argument("--events", action="store_true", help="post chatter to /events instead of commands")
    args = parser.parse_args()
    result = uvloop.run(run(args.url, args.rate, args.duration, args.tag, args.command, args.max_connections,
                            args.warmup, args.events))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
