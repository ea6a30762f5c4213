"""The bare baseline: a Starlette app on uvicorn that only verifies the signature and echoes the message.

It is what any webhook server must do at the least, served the way ``slashbots serve`` is
served (slashbots.cli.server_config: uvicorn, httptools, the standard library's event loop), but with no routing to bots, no dedupe, no rate
limits, no metrics, no logging and no reply: the floor slashbots' ack is set against.

    python benchmarks/bare_app.py --port 8001
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvicorn  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from benchmarks.webhooks import SECRET  # noqa: E402
from slashbots.cli import server_config  # noqa: E402


async def webhook(request: Request) -> JSONResponse:
    raw = await request.body()
    expected = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get("x-signature", "")):
        return JSONResponse({"error": "bad signature"}, status_code=401)
    return JSONResponse({"message": json.loads(raw)["message"]})


async def readyz(request: Request) -> JSONResponse:
    return JSONResponse({"ready": True})


app = Starlette(routes=[Route("/webhook", webhook, methods=["POST"]), Route("/readyz", readyz)])

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    uvicorn.Server(server_config(app, "127.0.0.1", parser.parse_args().port)).run()
