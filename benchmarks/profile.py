"""Profile slashbots under load with py-spy, and print where its CPU time goes.

    python benchmarks/profile.py acks [--rate 500] [--seconds 8]      # /echo commands, open loop
    python benchmarks/profile.py streams [--commands 500] [--seconds 8]  # replies streaming at once
    python benchmarks/profile.py acks --redis     # the same, with shared state on a redis-server

slashbots runs as in benchmarks/concurrency.py (probed_serve.py). Prints the frames with
the largest share of samples, inclusive of what they call.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import concurrency, servers, webhooks  # noqa: E402

# pip installs py-spy next to the interpreter, which need not be on PATH.
PY_SPY = str(Path(sys.executable).with_name("py-spy")) if Path(sys.executable).with_name("py-spy").exists() else "py-spy"


def shares(raw: Path, top: int) -> list[tuple[float, str]]:
    """Inclusive share of each frame in py-spy's raw output (one "frame;frame;... count" per line)."""
    total, inclusive = 0, Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        for frame in set(stack.split(";")):
            inclusive[frame] += int(count)
    return [(count / total, frame) for frame, count in inclusive.most_common(top)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=["acks", "streams"])
    parser.add_argument("--rate", type=float, default=500.0, help="acks: commands per second")
    parser.add_argument("--commands", type=int, default=500, help="streams: replies streaming at once")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--redis", action="store_true", help="shared state on a redis-server (SLASHBOTS_REDIS_URL)")
    args = parser.parse_args()
    if args.scenario == "acks":
        bots, command, rate, count = webhooks.bots_yaml([webhooks.echo_bot()]), "echo", args.rate, args.rate * args.seconds
    else:
        bots, command = concurrency.bots_yaml(args.commands, args.seconds), "stream"
        rate, count = concurrency.ARRIVALS_PER_S, args.commands
    with servers.workdir() as folder, contextlib.ExitStack() as stack:
        env = {}
        if args.redis:
            env["SLASHBOTS_REDIS_URL"] = stack.enter_context(servers.redis_server(folder)).url
        stream = stack.enter_context(servers.standin(folder))
        slashbots = stack.enter_context(servers.slashbots(folder, bots, stream.url, env=env,
                                                          argv=[servers.PYTHON, "benchmarks/probed_serve.py"]))
        raw = folder / "profile.txt"
        spy = subprocess.Popen([PY_SPY, "record", "-p", str(slashbots.pid), "-d", f"{args.seconds:.0f}", "-r", "200",
                                "-f", "raw", "-o", str(raw)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        loading = threading.Thread(target=servers.load, args=(slashbots.url, rate, count / rate, "p"),
                                   kwargs={"command": command})
        loading.start()
        spy.wait()
        loading.join()
        for share, frame in shares(raw, args.top):
            print(f"{share * 100:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
