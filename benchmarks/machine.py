"""The machine a run was measured on, for the head of BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return float("nan")


def _version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True)
        return (done.stdout or done.stderr).strip().splitlines()[0]  # wrk -v writes to stderr
    except (OSError, IndexError):
        return "not installed"


def describe() -> list[str]:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"- CPU: {_cpu_model()}, `nproc` = {os.cpu_count()}",
        f"- memory: {_memory_gb():.1f} GiB",
        f"- OS: {platform.platform()}",
        f"- Python: {sys.version.split()[0]} ({platform.python_implementation()}); load generator wrk: "
        f"{_version(['wrk', '-v'])}",
        f"- load average at the start: {load} (the machine is shared: other work may run beside the benchmarks)",
    ]
