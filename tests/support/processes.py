"""``slashbots serve`` as a real process, the way an operator runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from slashbots.testing import free_port, wait_until_ready

SLASHBOTS = str(Path(sys.executable).parent / "slashbots")


@dataclass
class Served:
    url: str
    process: subprocess.Popen[str]
    output: str = ""  # everything it printed, once it has stopped


def start_process(config: Path, stream_url: str, *args: str, env: dict[str, str] | None = None) -> Served:
    """Start ``slashbots serve`` against ``stream_url`` and return at once (see ``wait_ready``)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [SLASHBOTS, "serve", "--config", str(config), "--port", str(port), *args],
        env={**os.environ, "STREAM_CHAT_URL": stream_url, "SLASHBOTS_PUBLIC_URL": url, **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    return Served(url, process)


def wait_ready(served: Served, timeout: float = 20.0) -> None:
    try:
        wait_until_ready(served.url, timeout, process=served.process)
    except RuntimeError as exc:
        stop(served)
        raise AssertionError(f"{exc}:\n{served.output}") from None


def stop(served: Served, timeout: float = 30.0) -> None:
    """SIGTERM it (by its own id) and collect what it printed."""
    if served.process.poll() is None:
        served.process.send_signal(signal.SIGTERM)
    output, _ = served.process.communicate(timeout=timeout)
    served.output += output or ""


@contextmanager
def serve_process(config: Path, stream_url: str, *args: str) -> Iterator[Served]:
    """Start ``slashbots serve`` against ``stream_url``, wait until ready, SIGTERM it on exit."""
    served = start_process(config, stream_url, *args)
    wait_ready(served)
    try:
        yield served
    finally:
        stop(served)
