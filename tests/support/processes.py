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


LOAD_BALANCER = "http://127.0.0.1:9/load-balancer"  # every instance advertises the same public URL, as behind one


@contextmanager
def instances(config: Path, stream_url: str, redis_url: str, count: int) -> Iterator[list[Served]]:
    """``count`` instances on one Redis, started at the same moment, ready; each SIGTERMed (resumed first if paused)."""
    env = {"SLASHBOTS_REDIS_URL": redis_url, "SLASHBOTS_PUBLIC_URL": LOAD_BALANCER}
    started = [start_process(config, stream_url, env=env) for _ in range(count)]
    try:
        for served in started:
            wait_ready(served)
        yield started
    finally:
        for served in started:
            if served.process.poll() is None:
                served.process.send_signal(signal.SIGCONT)  # a paused one must be able to hear SIGTERM
            stop(served)
