"""The Stream stand-in in a process of its own, so that the server under test pays none of its cost.

    python benchmarks/standin_server.py        # prints "READY http://127.0.0.1:PORT" once serving
    python benchmarks/standin_server.py --rate-limits    # enforcing Stream's app rate limits

Besides the stand-in's API it answers read-only routes that count what landed, read once a
run is over (they deep-copy the stand-in's records, which is slow while it is busy):

    GET /_bench/sends?user=ID              every successful SendMessage by ID: [[text, at], ...]
    GET /_bench/messages?cid=C&user=ID     ID's messages in C as stored: [{id, text, generating}]
    GET /_bench/rate_limited               429s from the rate limits, by operation: {"UpdateMessagePartial": 3}
    GET /_bench/writes                     every message write, refused ones too:
                                           [[operation, message id, status, generating, at, text], ...]

``at`` is when the stand-in answered, on CLOCK_MONOTONIC, which every process on the machine
shares, so it can be set against a load generator's send times.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvicorn  # noqa: E402
import uvloop  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402
from starlette.types import ASGIApp, Receive, Scope, Send  # noqa: E402

from benchmarks.fast_standin import FastStreamStandIn  # noqa: E402
from benchmarks.webhooks import KEY, SECRET  # noqa: E402
from slashbots.sandbox.loopback import bind_loopback  # noqa: E402


def bench_app(standin: FastStreamStandIn) -> ASGIApp:
    async def sends(request: Request) -> JSONResponse:
        user = request.query_params["user"]
        found = [
            [call["json"]["message"].get("text", ""), call["at"]]
            for call in standin.writes("message")
            if call["operation"] == "SendMessage" and call["json"]["message"].get("user", {}).get("id") == user
        ]
        return JSONResponse({"sends": found})

    async def messages(request: Request) -> JSONResponse:
        cid, user = request.query_params["cid"], request.query_params["user"]
        found = [
            {"id": message["id"], "text": message["text"], "generating": bool(message.get("generating"))}
            for message in standin.messages(cid)
            if message["user"]["id"] == user
        ]
        return JSONResponse({"messages": found})

    async def rate_limited(request: Request) -> JSONResponse:
        return JSONResponse(standin.rate_limited)

    async def writes(request: Request) -> JSONResponse:
        return JSONResponse({"writes": [_write(call) for call in standin.calls if call["operation"] in MESSAGE_WRITES]})

    counting = Starlette(routes=[Route("/_bench/sends", sends), Route("/_bench/messages", messages),
                                 Route("/_bench/rate_limited", rate_limited),
                                 Route("/_bench/writes", writes)])

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # A prefix test rather than a router in front: the stand-in's own calls pay nothing for these routes.
        target = counting if scope["type"] == "http" and scope["path"].startswith("/_bench/") else standin.app
        await target(scope, receive, send)

    return app


MESSAGE_WRITES = {"SendMessage", "UpdateMessage", "UpdateMessagePartial"}


def _write(call: dict) -> list:
    """One recorded message write as [operation, message id, status, generating, at, text]."""
    body = call["json"] if isinstance(call["json"], dict) else {}
    if call["operation"] == "SendMessage":
        fields = body.get("message") or {}
        message_id = fields.get("id")
    else:
        fields = body.get("set") or body.get("message") or {}
        message_id = call["path"].rstrip("/").rsplit("/", 1)[-1]
    return [call["operation"], message_id, call["status"], bool(fields.get("generating")), call["at"],
            fields.get("text")]


async def keep_store_out_of_the_collector() -> None:
    """Every second, move what the stand-in has stored out of reach of the cyclic collector.

    The stand-in keeps every message and call it is sent. Its full collections, walking that
    growing store, paused it for 100 ms and more at 1,000 writes a second, and each pause
    reached slashbots as a burst of late answers: a measure of this stand-in, not of Stream
    or of slashbots (benchmarks/profiles.md). What is alive a second on is kept for good here.
    """
    while True:
        await asyncio.sleep(1.0)
        gc.freeze()


async def serve(rate_limits: bool) -> None:
    sock = bind_loopback()
    standin = FastStreamStandIn(KEY, SECRET, rate_limits=rate_limits)
    config = uvicorn.Config(bench_app(standin), log_level="warning", access_log=False,
                            lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serving.done():
            await serving  # raises what stopped it
        await asyncio.sleep(0.01)
    freezing = asyncio.create_task(keep_store_out_of_the_collector())
    print(f"READY http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    try:
        await serving
    finally:
        freezing.cancel()


if __name__ == "__main__":
    uvloop.run(serve(rate_limits="--rate-limits" in sys.argv[1:]))
