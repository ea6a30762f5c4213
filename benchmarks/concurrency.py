"""Concurrency: 1,000 commands in flight at once in one slashbots process, each streaming for 20 s.

The model stand-in is the pacing provider of the relay tests (core/paced_writers.py),
writing one piece every 100 ms for 20 s; each piece names its command, so every final
message can be checked against exactly the text its command should get. The commands
arrive at 500/s from the load generator, so all 1,000 are streaming at once for most of
the 20 s. slashbots runs with a probe of its event loop (benchmarks/probed_serve.py); its
Stream writes go to the stand-in in another process. The baseline is the same process,
idle, just before the commands arrive.

    python benchmarks/concurrency.py [--commands 1000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from benchmarks import servers, webhooks  # noqa: E402
from benchmarks.report import Section, ms  # noqa: E402
from benchmarks.stats import percentile  # noqa: E402

COMMANDS, SECONDS, PIECE_EVERY, ARRIVALS_PER_S = 1000, 20.0, 0.1, 500.0
BOT = "stream-bot"


def bots_yaml(commands: int, seconds: float) -> str:
    pieces = round(seconds / PIECE_EVERY)
    bot = {"command": "stream", "description": "streams for a while", "provider": "writer",
           "channel_types": ["messaging"], "identity": {"id": BOT, "name": "Stream bot"},
           "options": {"piece": "{args} ", "pieces": pieces, "delay": PIECE_EVERY}}
    # Shedding would turn commands away here, and this benchmark is about holding all of them at once.
    server = {"max_replies_in_flight": commands * 2, "max_loop_lag_ms": 60_000}
    return webhooks.bots_yaml([bot], server=server, plugins=["slashbots.paced_writers"])


def expected_text(args: str, seconds: float) -> str:
    return " ".join([args] * round(seconds / PIECE_EVERY))


def watch_in_flight(url: str, stop: threading.Event, peak: list[float]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], servers.metrics(url).get("in_flight", 0))
        stop.wait(0.5)


def run(commands: int, seconds: float) -> dict:
    with servers.workdir() as folder, servers.standin(folder) as stream, \
            servers.slashbots(folder, bots_yaml(commands, seconds), stream.url,
                              argv=[servers.PYTHON, "benchmarks/probed_serve.py"]) as slashbots:
        time.sleep(1.0)  # one second of the idle loop: the baseline lag
        idle_memory = servers.memory_mb(slashbots.pid)
        started = time.monotonic()
        peak, stop = [0.0], threading.Event()
        watcher = threading.Thread(target=watch_in_flight, args=(slashbots.url, stop, peak))
        watcher.start()
        load = servers.load(slashbots.url, ARRIVALS_PER_S, commands / ARRIVALS_PER_S, "c", command="stream",
                            warmup=0)
        drained = servers.wait_idle(slashbots.url, timeout=seconds * 6)
        stop.set()
        watcher.join()
        finished = time.monotonic()
        memory = servers.memory_mb(slashbots.pid)
        samples = httpx.get(slashbots.url + "/_bench/lag", timeout=30).json()["samples"]
        stored = httpx.get(stream.url + "/_bench/messages", params={"cid": webhooks.CID, "user": BOT},
                           timeout=120).json()["messages"]
        writes = len(httpx.get(stream.url + "/_bench/sends", params={"user": BOT}, timeout=120).json()["sends"])

    idle = [lag for at, lag in samples if at < started]
    busy = [lag for at, lag in samples if started <= at <= finished]
    finals: dict[str, int] = {}
    for message in stored:
        finals[message["text"]] = finals.get(message["text"], 0) + (not message["generating"])
    wanted = [expected_text(f"c-{i}", seconds) for i in range(commands)]
    return {
        "commands": commands, "seconds": seconds, "accepted": load["outcomes"].get("accepted", 0),
        "ack_p99_ms": percentile(load["latencies"], 99) * 1000, "peak_in_flight": peak[0],
        "elapsed": finished - started, "drain": drained,
        "idle_rss": idle_memory["rss"], "peak_rss": memory["peak"],
        "idle_lag": {"p99": percentile(idle, 99) * 1000, "max": max(idle) * 1000},
        "lag": {"p50": percentile(busy, 50) * 1000, "p99": percentile(busy, 99) * 1000, "max": max(busy) * 1000},
        "lost": sum(finals.get(text, 0) == 0 for text in wanted),
        "duplicated": sum(max(0, finals.get(text, 0) - 1) for text in wanted),
        "stray": len(stored) - sum(min(1, finals.get(text, 0)) for text in wanted),
        "messages_posted": writes,
    }


def report(result: dict, command: str) -> Section:
    section = Section("4. Concurrency: 1,000 streaming replies in one process", command)
    section.text.append(
        f"{result['commands']:,} commands arriving at {ARRIVALS_PER_S:.0f}/s, each streaming one piece every "
        f"{PIECE_EVERY * 1000:.0f} ms for {result['seconds']:g} s (core/paced_writers.py), default update "
        "interval (250 ms). One slashbots process with a 10 ms event-loop probe (benchmarks/probed_serve.py); "
        "baseline: the same process idle, the second before the commands. A reply is lost if no final message "
        "carries exactly its text, duplicated if more than one does."
    )
    idle, busy = result["idle_lag"], result["lag"]
    section.table(
        ["", "RSS", "loop lag p50", "loop lag p99", "loop lag max"],
        [["idle (baseline)", f"{result['idle_rss']:.0f} MB", "-", ms(idle["p99"]), ms(idle["max"])],
         [f"{result['commands']:,} streams", f"{result['peak_rss']:.0f} MB (peak)", ms(busy["p50"]), ms(busy["p99"]),
          ms(busy["max"])]],
    )
    section.table(
        ["accepted", "peak in flight", "ack p99", "all done after", "lost", "duplicated", "other bot messages"],
        [[result["accepted"], f"{result['peak_in_flight']:.0f}", ms(result["ack_p99_ms"]), f"{result['elapsed']:.1f} s",
          result["lost"], result["duplicated"], result["stray"]]],
    )
    section.target("0 replies lost", str(result["lost"]), result["lost"] == 0)
    section.target("0 replies duplicated", str(result["duplicated"]), result["duplicated"] == 0)
    section.target("peak RSS ≤ 300 MB", f"{result['peak_rss']:.0f} MB", result["peak_rss"] <= 300)
    section.target("event-loop lag p99 ≤ 50 ms", ms(busy["p99"]), busy["p99"] <= 50)
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=COMMANDS)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    args = parser.parse_args()
    command = f"python benchmarks/concurrency.py --commands {args.commands} --seconds {args.seconds:g}"
    print(report(run(args.commands, args.seconds), command).markdown())


if __name__ == "__main__":
    main()
