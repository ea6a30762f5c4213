"""The processes a benchmark runs: the Stream stand-in, slashbots, the bare baseline, the load generator, Redis.

Each runs as its own OS process, as in production, so no figure includes another's CPU time
on the same event loop. Everything listens on 127.0.0.1; every process is stopped by its pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import redis

from slashbots.testing import free_port, wait_until_ready

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def memory_mb(pid: int) -> dict[str, float]:
    """Resident memory now (VmRSS) and at its peak so far (VmHWM), in MB, read from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"rss": int(fields["VmRSS"].split()[0]) / 1024, "peak": int(fields["VmHWM"].split()[0]) / 1024}


@contextlib.contextmanager
def _process(argv: list[str], log: Path, env: dict[str, str] | None = None, *,
             read_stdout: bool = False) -> Iterator[subprocess.Popen]:
    """Run ``argv`` until the block ends; its stderr (and stdout, unless read) goes to ``log``."""
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **(env or {})},
                                   stdout=subprocess.PIPE if read_stdout else out, stderr=out)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(url: str, process: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    try:
        wait_until_ready(url, timeout, process=process)
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}:\n{log.read_text()[-2000:]}") from None


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="slashbots-bench-") as folder:
        yield Path(folder)


@contextlib.contextmanager
def standin(folder: Path, *, rate_limits: bool = False) -> Iterator[Server]:
    """The Stream stand-in in its own process (benchmarks/standin_server.py); with `rate_limits`,
    enforcing Stream's app limits (GET /_bench/rate_limited counts the 429s)."""
    log = folder / "standin.log"
    argv = [PYTHON, "benchmarks/standin_server.py", *(["--rate-limits"] if rate_limits else [])]
    with _process(argv, log, read_stdout=True) as process:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        if not line.startswith("READY "):
            raise RuntimeError(f"the Stream stand-in did not start:\n{log.read_text()[-2000:]}")
        yield Server(line.split()[1], process, log)


@contextlib.contextmanager
def slashbots(folder: Path, bots_yaml: str, stream_url: str, *, name: str = "slashbots",
              argv: list[str] | None = None, env: dict[str, str] | None = None) -> Iterator[Server]:
    """``slashbots serve`` for ``bots_yaml`` against the stand-in, once it has synced (/readyz)."""
    config = folder / f"{name}.yaml"
    config.write_text(bots_yaml)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = argv or [PYTHON, "-m", "slashbots.cli", "serve"]
    env = {"STREAM_CHAT_URL": stream_url, "SLASHBOTS_PUBLIC_URL": url, "SLASHBOTS_LOAD_PLUGINS": "", **(env or {})}
    log = folder / f"{name}.log"
    with _process([*command, "--config", str(config), "--port", str(port)], log, env) as process:
        _wait_ready(url, process, log)
        yield Server(url, process, log)


@contextlib.contextmanager
def bare(folder: Path) -> Iterator[Server]:
    """The bare Starlette+uvicorn baseline (benchmarks/bare_app.py)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / "bare.log"
    with _process([PYTHON, "benchmarks/bare_app.py", "--port", str(port)], log) as process:
        _wait_ready(url, process, log)
        yield Server(url, process, log)


@dataclass
class Redis:
    url: str
    process: subprocess.Popen
    port: int

    @property
    def pid(self) -> int:
        return self.process.pid

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=10)

    def used_memory(self) -> int:
        """INFO memory's used_memory less its clients' buffers (mem_clients_normal), in bytes: what
        Redis has allocated for its data and their tables. The buffers of the instances' pooled
        connections, which come and go with load, would otherwise swamp a per-key figure."""
        with self.client() as client:
            memory = client.info("memory")
        return int(memory["used_memory"]) - int(memory["mem_clients_normal"])


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[Redis]:
    """redis-server (Debian's, 7.0) on a free loopback port, without persistence, until the block ends.

    Stopped by its pid like every other process here. Without redis-server the benchmark stops
    and says how to install it.
    """
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("this benchmark needs redis-server: apt-get install -y redis-server")
    port = free_port()
    argv = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(folder), "--protected-mode", "yes"]
    with _process(argv, folder / "redis.log") as process:
        server = Redis(f"redis://127.0.0.1:{port}/0", process, port)
        deadline = time.monotonic() + 10
        while True:
            try:
                with server.client() as client:
                    client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start:\n{(folder / 'redis.log').read_text()[-2000:]}")
                time.sleep(0.02)
        yield server


def load(url: str, rate: float, duration: float, tag: str, **options: object) -> dict:
    """Run benchmarks/loadgen.py against ``url`` and return what it measured."""
    argv = [PYTHON, "benchmarks/loadgen.py", "--url", url, "--rate", str(rate), "--duration", str(duration),
            "--tag", tag]
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        argv += [flag] if value is True else [flag, str(value)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, check=True)
    return json.loads(done.stdout)


_SAMPLE = re.compile(r'^(slashbots_\w+?)(?:\{(.*)\})? ([0-9.e+-]+)$')


def metrics(url: str) -> dict[str, float]:
    """slashbots' /metrics, summed by metric name and outcome: {"accepted": n, "busy": n, "in_flight": n, ...}."""
    found: dict[str, float] = {}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        name, labels, value = match.groups()
        if name == "slashbots_webhook_requests_total":
            outcome = re.search(r'outcome="([^"]*)"', labels or "")
            if outcome:
                found[outcome.group(1)] = found.get(outcome.group(1), 0) + float(value)
        elif name == "slashbots_replies_in_flight":
            found["in_flight"] = float(value)
    return found


def metric_total(url: str, name: str) -> float:
    """One metric of slashbots' /metrics, summed over its labels (0 when it has no sample yet)."""
    total = 0.0
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        match = _SAMPLE.match(line)
        if match and match.group(1) in (name, name + "_total"):
            total += float(match.group(3))
    return total


def remove_event_hooks(standin_url: str) -> None:
    """Empty the stand-in app's event hooks: from then on the load generator alone plays Stream's event webhook."""
    from stream_chat import StreamChat

    from benchmarks.webhooks import KEY, SECRET

    StreamChat(KEY, SECRET, base_url=standin_url).update_app_settings(event_hooks=[])


def event_outcomes(url: str) -> dict[str, float]:
    """slashbots' /metrics slashbots_events_total, summed by outcome."""
    found: dict[str, float] = {}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        match = _SAMPLE.match(line)
        if match and match.group(1) == "slashbots_events_total":
            outcome = re.search(r'outcome="([^"]*)"', match.group(2) or "")
            if outcome:
                found[outcome.group(1)] = found.get(outcome.group(1), 0) + float(match.group(3))
    return found


def wait_idle(url: str, timeout: float = 60.0) -> float:
    """Wait until slashbots has no reply running; returns the seconds it took."""
    started = time.monotonic()
    while metrics(url).get("in_flight", 0) > 0:
        if time.monotonic() - started > timeout:
            break
        time.sleep(0.1)
    return time.monotonic() - started


def replies(standin_url: str, user: str) -> tuple[dict[str, float], int]:
    """The texts ``user`` posted at the stand-in (SendMessage), when each first landed (monotonic
    seconds), and how many posts repeated a text already posted."""
    sends = httpx.get(standin_url + "/_bench/sends", params={"user": user}, timeout=60).json()["sends"]
    first: dict[str, float] = {}
    for text, at in sends:
        first.setdefault(text, at)
    return first, len(sends) - len(first)


def machine_cpu_seconds() -> float:
    """CPU time every process on the machine has used since boot (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(value) for value in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class Neighbours:
    """How much CPU the machine's other work took while a benchmark ran: the machine's CPU time
    less that of the processes the benchmark started (by pid) and its own and its children's."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.machine = machine_cpu_seconds()
        self.ours = self._own()
        self.pids: dict[int, float] = {}

    @staticmethod
    def _own() -> float:
        import resource

        self_, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return self_.ru_utime + self_.ru_stime + children.ru_utime + children.ru_stime

    def watch(self, *pids: int) -> None:
        """Count these processes as the benchmark's own, from now (call as soon as they start)."""
        for pid in pids:
            self.pids.setdefault(pid, cpu_seconds(pid))

    def cores(self) -> float:
        """Cores the rest of the machine used on average since this began. Call it while the watched
        processes still run: one that has ended and been reaped counts through this process's
        children's times instead (wholly, which errs towards counting less as the neighbours')."""
        ours = self._own() - self.ours
        for pid, before in self.pids.items():
            try:
                ours += cpu_seconds(pid) - before
            except (FileNotFoundError, ProcessLookupError):
                pass
        return max(machine_cpu_seconds() - self.machine - ours, 0.0) / (time.monotonic() - self.started)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
