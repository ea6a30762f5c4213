"""``slashbots serve`` as a real process, the way an operator runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx

SLASHBOTS = str(Path(sys.executable).parent / "slashbots")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Served:
    url: str
    process: subprocess.Popen[str]
    output: str = ""  # everything it printed, once it has stopped


@contextmanager
def serve_process(config: Path, stream_url: str, *args: str) -> Iterator[Served]:
    """Start ``slashbots serve`` against ``stream_url``, wait until ready, SIGTERM it on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [SLASHBOTS, "serve", "--config", str(config), "--port", str(port), *args],
        env={**os.environ, "STREAM_CHAT_URL": stream_url, "SLASHBOTS_PUBLIC_URL": url},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    served = Served(url, process)
    try:
        deadline = time.monotonic() + 20
        while not _ready(url):
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.1)
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        served.output, _ = process.communicate(timeout=20)


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz").status_code == 200
    except httpx.TransportError:
        return False
