"""``slashbots serve`` with a probe of its own event loop, for benchmarks that need the loop's lag.

It builds and serves the app as ``slashbots serve`` does (slashbots.cli.server_config, text logs), and
beside it runs a task that sleeps 10 ms at a time and records how late it wakes: the time
any callback, an ack included, would have waited for the loop. The samples are at

    GET /_bench/lag       {"samples": [[monotonic time, lag in seconds], ...]}

    python benchmarks/probed_serve.py --config bots.yaml --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvicorn  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from slashbots import logs  # noqa: E402
from slashbots.app import create_app  # noqa: E402
from slashbots.cli import server_config  # noqa: E402
from slashbots.config import load_config  # noqa: E402

TICK = 0.010


class LagProbe:
    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []

    async def run(self) -> None:
        while True:
            asked = time.monotonic()
            await asyncio.sleep(TICK)
            woke = time.monotonic()
            self.samples.append((woke, max(0.0, woke - asked - TICK)))

    async def endpoint(self, request: Request) -> JSONResponse:
        return JSONResponse({"samples": self.samples})


async def serve(config_path: str, port: int) -> None:
    probe = LagProbe()
    app = create_app(load_config(config_path), routes=[Route("/_bench/lag", probe.endpoint)])
    server = uvicorn.Server(server_config(app, "127.0.0.1", port))
    probing = asyncio.create_task(probe.run())
    try:
        await server.serve()
    finally:
        probing.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logs.configure("text")
    asyncio.run(serve(args.config, args.port))


if __name__ == "__main__":
    main()
