"""Reply writes: core/http_client.py against the best library clients, httpx and aiohttp, each leanly set up.

Each client makes Stream's three reply writes (send a message, update it, send an event) in
turn, with the gateway's headers and bodies of a reply's size, to a server of Stream's
shape in another process: TLS (as Stream is), keep-alive, a JSON answer of about 1 KB with
Stream's headers, sent after a delay standing for Stream's latency (so dozens of writes are
in flight and every client keeps a pool of connections). Writes start on an open-loop
schedule, each in a task of its own as the relay makes them, at Stream's default limit
(1,000 sends and 1,000 updates a minute: 33 writes/s) and at 1,000 commands/s (3 writes a
command: 3,000 writes/s). The figure is the CPU of the calling process per write, less the
CPU of the same schedule with no write at all (the baseline, measured in the same turns),
and what that costs in cores at the rate. Clients take turns, so a noisy spell of this
shared machine lands on all of them alike; each figure is the median of its turns.

    python benchmarks/http_clients.py [--turns 3] [--seconds 4] [--slow-seconds 10] [--latency-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Awaitable, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402
import httptools  # noqa: E402
import httpx  # noqa: E402
import trustme  # noqa: E402

from benchmarks.report import Section  # noqa: E402
from benchmarks.stats import percentile  # noqa: E402
from slashbots.http_client import HTTPClient  # noqa: E402

STREAM_LIMIT = 2000 / 60  # writes/s: 1,000 sends and 1,000 updates a minute, Stream's default app limit
AT_1000_COMMANDS = 3000.0  # writes/s: placeholder, final text and the typing event of 1,000 commands a second
TURNS, SECONDS, SLOW_SECONDS, LATENCY_MS = 3, 4.0, 10.0, 20.0
KEEP_IF_SAVES = 0.25  # cores at 1,000 commands/s: the issue's rule for keeping a hand-written client

HOST = "localhost"
HEADERS = {  # as core/stream.py sends them (the JWT of the right length)
    "Authorization": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + "x" * 60 + "." + "y" * 43,
    "stream-auth-type": "jwt",
    "X-Stream-Client": "slashbots",
}
QUERY = "?api_key=" + "k" * 12
ANSWER_BODY = json.dumps({
    "message": {"id": "m" * 36, "text": "t" * 400, "type": "regular", "user": {"id": "echo-bot", "role": "user"},
                "created_at": "2026-11-26T07:19:00.000000Z", "updated_at": "2026-11-26T07:19:00.000000Z",
                "attachments": [], "latest_reactions": [], "mentioned_users": [], "reaction_counts": {}},
    "duration": "4.21ms",
}).encode()
ANSWER = (
    b"HTTP/1.1 201 Created\r\nContent-Type: application/json;charset=utf-8\r\n"
    b"Date: Thu, 26 Nov 2026 07:19:00 GMT\r\nX-Ratelimit-Limit: 1000\r\nX-Ratelimit-Remaining: 999\r\n"
    b"X-Ratelimit-Reset: 1795677600\r\nCache-Control: no-cache\r\nContent-Length: %d\r\n\r\n%s"
    % (len(ANSWER_BODY), ANSWER_BODY)
)


def writes(n: int) -> tuple[str, str, bytes]:
    """The ``n``-th reply write: method, path and query, JSON body."""
    kind = n % 3
    text = "word " * 60
    if kind == 0:
        body = {"message": {"id": f"reply-{n}", "text": "", "generating": True, "user": {"id": "echo-bot"}}}
        return "POST", f"/channels/messaging/general-{n % 50}/message{QUERY}", json.dumps(body).encode()
    if kind == 1:
        body = {"set": {"text": text, "generating": False}, "user": {"id": "echo-bot"}}
        return "PUT", f"/messages/reply-{n - 1}{QUERY}", json.dumps(body).encode()
    body = {"event": {"type": "ai_indicator.update", "ai_state": "AI_STATE_GENERATING", "user": {"id": "echo-bot"}}}
    return "POST", f"/channels/messaging/general-{n % 50}/event{QUERY}", json.dumps(body).encode()


# -- the server, in a process of its own ------------------------------------------------------------


class _Answering(asyncio.Protocol):
    """Answers every request with ANSWER, ``latency`` seconds after it arrived, in order."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.due = 0.0  # answers leave in order: the next may not go before the last

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.due = max(self.due, self.loop.time() + self.latency)
        self.loop.call_at(self.due, self._answer)

    def _answer(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(ANSWER)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def _serve(port: multiprocessing.SimpleQueue, cert: str, key: str, latency: float) -> None:
    async def main() -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        server = await asyncio.get_running_loop().create_server(
            lambda: _Answering(latency), "127.0.0.1", 0, ssl=context, backlog=1024)
        port.put(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


# -- the clients, set up as a careful user of each would --------------------------------------------

Write = Callable[[str, str, bytes], Awaitable[int]]  # (method, target, body) -> status


async def handwritten(base: str) -> tuple[Write, Callable[[], Awaitable[None]]]:
    client = HTTPClient(base, HEADERS, timeout=6.0)

    async def write(method: str, target: str, body: bytes) -> int:
        return (await client.request(method, target, body)).status

    return write, client.close


async def aiohttp_lean(base: str) -> tuple[Write, Callable[[], Awaitable[None]]]:
    # No cookie jar, no automatic headers or decompression, no environment lookups per
    # request (a proxy, when there is one, is resolved once and passed as ``proxy=``).
    session = aiohttp.ClientSession(
        base_url=base, headers={**HEADERS, "Content-Type": "application/json", "Accept": "application/json"},
        connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=59.0, ssl=ssl.create_default_context()),
        cookie_jar=aiohttp.DummyCookieJar(), skip_auto_headers=("User-Agent", "Accept-Encoding"),
        auto_decompress=False, timeout=aiohttp.ClientTimeout(total=6.0), trust_env=False,
    )

    async def write(method: str, target: str, body: bytes) -> int:
        async with session.request(method, target, data=body) as response:
            await response.read()
            return response.status

    return write, session.close


async def httpx_lean(base: str) -> tuple[Write, Callable[[], Awaitable[None]]]:
    # HTTP/1.1, a pool as large as the others' that keeps every connection alive, env read once.
    client = httpx.AsyncClient(
        base_url=base, headers={**HEADERS, "Content-Type": "application/json", "Accept": "application/json"},
        timeout=6.0, limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
        verify=ssl.create_default_context(), trust_env=False,
    )

    async def write(method: str, target: str, body: bytes) -> int:
        return (await client.request(method, target, content=body)).status_code

    return write, client.aclose


async def nothing(base: str) -> tuple[Write, Callable[[], Awaitable[None]]]:
    """The baseline: the same schedule and tasks, no write."""

    async def write(method: str, target: str, body: bytes) -> int:
        return 201

    async def close() -> None:
        pass

    return write, close


# httpx needs several milliseconds of CPU a write, so at 3,000 writes/s it falls further behind
# every second; its turns there last this fraction of the others', to keep the run short.
SHORTER_AT_3000 = {"httpx (lean AsyncClient)": 0.125}

CLIENTS = {
    "baseline (schedule only)": nothing,
    "slashbots (core/http_client.py)": handwritten,
    "aiohttp (lean ClientSession)": aiohttp_lean,
    "httpx (lean AsyncClient)": httpx_lean,
}
OURS, BASELINE = "slashbots (core/http_client.py)", "baseline (schedule only)"


async def turn(make: Callable[[str], Awaitable[tuple[Write, Callable[[], Awaitable[None]]]]], base: str,
               rate: float, seconds: float, latency: float) -> dict:
    """One client at ``rate`` for ``seconds``: CPU and latency of its writes."""
    write, close = await make(base)
    plan = [writes(n) for n in range(max(3, round(rate * seconds)))]
    # Warm up: open the connections a turn keeps busy, so handshakes are not counted.
    await asyncio.gather(*(write(*plan[n % 3]) for n in range(min(len(plan), int(rate * latency) + 3))))
    latencies: list[float] = []
    failures = 0

    async def one(request: tuple[str, str, bytes], due: float) -> None:
        nonlocal failures
        try:
            status = await write(*request)
            failures += status != 201
        except Exception:
            failures += 1
        latencies.append(time.perf_counter() - due)

    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task] = set()
    gc.collect()
    cpu, started = time.process_time(), time.perf_counter()
    for n, request in enumerate(plan):
        due = started + n / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        task = loop.create_task(one(request, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.gather(*tasks)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - started
    await close()
    return {"writes": len(plan), "cpu": cpu, "wall": wall, "failures": failures,
            "p50": percentile(latencies, 50), "p99": percentile(latencies, 99)}


async def measure(base: str, rates: list[tuple[float, float]], turns: int, latency: float) -> dict:
    results: dict[float, dict[str, list[dict]]] = {rate: {name: [] for name in CLIENTS} for rate, _ in rates}
    for rate, seconds in rates:
        for n in range(turns):
            for name, make in CLIENTS.items():
                fraction = SHORTER_AT_3000.get(name, 1.0) if rate == AT_1000_COMMANDS else 1.0
                results[rate][name].append(await turn(make, base, rate, seconds * fraction, latency))
    return results


def run(turns: int = TURNS, seconds: float = SECONDS, slow_seconds: float = SLOW_SECONDS,
        latency_ms: float = LATENCY_MS) -> dict:
    authority = trustme.CA()
    with tempfile.TemporaryDirectory() as folder:
        cert, key, bundle = (os.path.join(folder, name) for name in ("cert.pem", "key.pem", "ca.pem"))
        issued = authority.issue_cert(HOST)
        issued.cert_chain_pems[0].write_to_path(cert)
        issued.private_key_pem.write_to_path(key)
        authority.cert_pem.write_to_path(bundle)
        os.environ["SSL_CERT_FILE"] = bundle  # every client trusts the system's store, this CA here
        context = multiprocessing.get_context("spawn")
        port = context.SimpleQueue()
        server = context.Process(target=_serve, args=(port, cert, key, latency_ms / 1000), daemon=True)
        server.start()
        try:
            base = f"https://{HOST}:{port.get()}"
            rates = [(STREAM_LIMIT, slow_seconds), (AT_1000_COMMANDS, seconds)]
            results = asyncio.run(measure(base, rates, turns, latency_ms / 1000))
        finally:
            server.terminate()
            server.join()
    return {"turns": turns, "latency_ms": latency_ms, "rates": results}


def per_write(turns: list[dict], baseline: list[dict]) -> float:
    """CPU seconds per write, net of the baseline: the median over turns."""
    base = statistics.median(t["cpu"] / t["writes"] for t in baseline)
    return statistics.median(t["cpu"] / t["writes"] for t in turns) - base


def report(result: dict, command: str) -> Section:
    section = Section("7. Reply writes: core/http_client.py against httpx and aiohttp", command)
    section.text.append(
        "Stream's three reply writes (send, update, event) in turn, each in its own task on an open-loop schedule, "
        f"over TLS to a server of Stream's shape in another process that answers about 1 KB of JSON after "
        f"{result['latency_ms']:g} ms; {result['turns']} turns per rate, clients taking turns, medians. CPU is the "
        "calling process's per write, less the baseline's (the same schedule with no write), with the range over "
        "turns; cores are that times the rate, what the client needs to keep up (a process has one). A client "
        "that needs more falls behind: its achieved rate drops and its latency, from each write's scheduled "
        f"start, grows. At 3,000 writes/s httpx's turns are {SHORTER_AT_3000['httpx (lean AsyncClient)']:g} as long."
    )
    rows = []
    cores: dict[tuple[float, str], float] = {}
    for rate, by_client in result["rates"].items():
        baseline = by_client[BASELINE]
        for name, turns in by_client.items():
            writes_done = sum(t["writes"] for t in turns)
            failures = sum(t["failures"] for t in turns)
            raw = statistics.median(t["cpu"] / t["writes"] for t in turns)
            if name == BASELINE:
                net, in_cores = "-", "-"
            else:
                cpu = per_write(turns, baseline)
                cores[rate, name] = cpu * rate
                base = statistics.median(t["cpu"] / t["writes"] for t in baseline)
                spread = [(t["cpu"] / t["writes"] - base) * 1e6 for t in turns]
                net = f"{cpu * 1e6:.0f} µs ({min(spread):.0f}–{max(spread):.0f})"
                in_cores = f"{cpu * rate:.3f}"
            achieved = statistics.median(t["writes"] / t["wall"] for t in turns)
            rows.append([f"{rate:.0f}", name, writes_done, f"{achieved:.0f}", failures, f"{raw * 1e6:.0f} µs", net, in_cores,
                         f"{statistics.median(t['p50'] for t in turns) * 1000:.1f} ms",
                         f"{statistics.median(t['p99'] for t in turns) * 1000:.1f} ms"])
    section.table(["writes/s", "client", "writes", "achieved /s", "failed", "CPU per write", "net of baseline (range)", "cores needed",
                   "latency p50", "latency p99"], rows)
    fast = AT_1000_COMMANDS
    library = min((name for name in CLIENTS if name not in (OURS, BASELINE)), key=lambda name: cores[fast, name])
    saved = cores[fast, library] - cores[fast, OURS]
    section.text.append(
        f"At 1,000 commands/s the hand-written client saves {saved:.2f} of a core against the best library "
        f"({library}); the rule for keeping it is at least {KEEP_IF_SAVES}. At Stream's limit the difference is "
        f"{(cores[STREAM_LIMIT, library] - cores[STREAM_LIMIT, OURS]) * 1000:.1f} thousandths of a core."
    )
    section.text += [
        "",
        "Much of httpx's cost here is httpcore asking `import sniffio` for every lock it makes: sniffio, which "
        "anyio 4.16 no longer requires, is not installed, and each failed import searches sys.path (about 100 µs). "
        "With a stub sniffio, "
        "httpx still took about 1.9 ms a write at 300 writes/s, over three times aiohttp (a separate run, not "
        "in this table).",
    ]
    section.target(f"hand-written client saves ≥ {KEEP_IF_SAVES} core at 1,000 commands/s against {library}",
                   f"{saved:.2f} core", saved >= KEEP_IF_SAVES)
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=TURNS)
    parser.add_argument("--seconds", type=float, default=SECONDS, help="per client and turn at 3,000 writes/s")
    parser.add_argument("--slow-seconds", type=float, default=SLOW_SECONDS, help="per client and turn at 33 writes/s")
    parser.add_argument("--latency-ms", type=float, default=LATENCY_MS)
    args = parser.parse_args()
    command = (f"python benchmarks/http_clients.py --turns {args.turns} --seconds {args.seconds:g} "
               f"--slow-seconds {args.slow_seconds:g} --latency-ms {args.latency_ms:g}")
    print(report(run(args.turns, args.seconds, args.slow_seconds, args.latency_ms), command).markdown())


if __name__ == "__main__":
    main()
