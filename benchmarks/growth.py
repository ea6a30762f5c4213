"""Cost of growth: ack latency and memory with 1, 10 and 50 bots; reply overhead with 1 and 20 plugins.

Each configuration is its own ``slashbots serve``, all against the same Stream stand-in,
loaded in turns by the open-loop generator with /echo at a fixed rate. Every configuration
loads one extra plugin module except the 20-plugin one; a plugin registers a provider and an
``error_reply`` hook, so pluggy has 20 implementations of each hook to hold. The 1-bot
configuration runs twice, as two servers: the difference between the two is the noise of
this machine now, against which the others are read.

    python benchmarks/growth.py [--rate 300] [--duration 3]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import servers, webhooks  # noqa: E402
from benchmarks.report import Section, ms  # noqa: E402
from benchmarks.stats import summary_ms  # noqa: E402

RATE, DURATION = 300.0, 3.0
TURNS = 2  # each configuration's duration, in turns taken by all of them one after the other
PLUGIN = '''\
from slashbots import hookimpl


class Idle:
    def __init__(self, options):
        pass

    async def respond(self, request):
        yield "idle"


@hookimpl
def register_providers(register):
    register("idle{n}", Idle)


@hookimpl
def error_reply(request, error):
    return None
'''


def write_plugins(folder: Path, count: int) -> list[str]:
    names = []
    for n in range(count):
        (folder / f"bench_plugin_{n}.py").write_text(PLUGIN.replace("{n}", str(n)))
        names.append(f"bench_plugin_{n}")
    return names


def configuration(bots: int, plugins: list[str]) -> str:
    echoes = [webhooks.echo_bot("echo" if n == 0 else f"echo{n}") for n in range(bots)]
    return webhooks.bots_yaml(echoes, plugins=plugins)


def run(rate: float, duration: float) -> list[dict]:
    plan = [("bots1", 1, 1), ("bots10", 10, 1), ("bots50", 50, 1), ("plugins20", 1, 20), ("bots1again", 1, 1)]
    with servers.workdir() as folder, servers.standin(folder) as stream, contextlib.ExitStack() as running:
        plugins = write_plugins(folder, 20)
        started = {
            name: running.enter_context(servers.slashbots(folder, configuration(bots, plugins[:count]), stream.url,
                                                          name=name, env={"PYTHONPATH": str(folder)}))
            for name, bots, count in plan
        }
        rows = {name: {"name": name, "bots": bots, "plugins": count, "turns": [], "cpu": 0.0,
                       "rss_start": servers.memory_mb(started[name].pid)["rss"]} for name, bots, count in plan}
        # The configurations take turns, so a noisy spell of this shared machine lands on all of them alike.
        for n in range(TURNS):
            for name, server in started.items():
                before = servers.cpu_seconds(server.pid)
                rows[name]["turns"].append(servers.load(server.url, rate, duration / TURNS, f"{name}t{n}"))
                servers.wait_idle(server.url)
                rows[name]["cpu"] += servers.cpu_seconds(server.pid) - before
        for name, server in started.items():
            rows[name]["rss"] = servers.memory_mb(server.pid)["rss"]
        landed, _ = servers.replies(stream.url, "echo-bot")
    for row in rows.values():
        turns = row.pop("turns")
        delays = [landed[f"{t['tag']}-{i}"] - (t["t0"] + i / rate)
                  for t in turns for i in range(t["sent"]) if f"{t['tag']}-{i}" in landed]
        row["sent"] = sum(t["sent"] for t in turns)
        row["landed"] = len(delays)
        row["ack"] = summary_ms([latency for t in turns for latency in t["latencies"]])
        row["reply"] = summary_ms(delays)
        row["cpu_ms"] = row.pop("cpu") / row["sent"] * 1000
    return list(rows.values())


def report(rows: list[dict], rate: float, duration: float, command: str) -> Section:
    section = Section("6. Cost of growth: bots and plugins", command)
    section.text.append(
        f"Each row its own `slashbots serve`, /echo at {rate:g}/s for {duration:g} s (open loop) in {TURNS} turns "
        "taken by all rows in order, replies to the Stream stand-in. The 1-bot, 1-plugin configuration runs as two "
        "servers, first and last; their difference is this run's noise. \"reply\" is from the scheduled send to the reply landing at the stand-in; CPU is the "
        "server's, per command, ack and reply together."
    )
    table = []
    for row in rows:
        label = f"{row['bots']} bot{'s' if row['bots'] > 1 else ''}, {row['plugins']} plugin{'s' if row['plugins'] > 1 else ''}"
        if row["name"] == "bots1again":
            label += " (again)"
        table.append([label, ms(row["ack"]["p50"]), ms(row["ack"]["p99"]), ms(row["reply"]["p50"]),
                      ms(row["reply"]["p99"]), f"{row['cpu_ms']:.2f} ms", f"{row['rss_start']:.0f} MB",
                      f"{row['rss']:.0f} MB", f"{row['landed']} / {row['sent']}"])
    section.table(["configuration", "ack p50", "ack p99", "reply p50", "reply p99", "CPU per command",
                   "RSS at start", "RSS after", "replies landed"], table)
    by = {row["name"]: row for row in rows}
    first, last = by["bots1"], by["bots1again"]

    def flat(key: str, part: str, row: dict) -> tuple[str, bool]:
        """Within noise: no further above the slower 1-bot run than the two 1-bot runs are apart
        (with a floor of 10% of that run, for a quiet machine)."""
        def value(of: dict) -> float:
            return of[key][part] if part else of[key]

        reference = max(value(first), value(last))
        allowance = max(abs(value(first) - value(last)), 0.1 * reference)
        unit = ms if part else (lambda v: f"{v:.2f} ms")
        return f"{unit(value(row))} vs {unit(reference)} ± {unit(allowance)}", value(row) <= reference + allowance

    # Medians and CPU, not p99s: a p99 of 900 samples is the 9th worst, which this shared machine moves at will.
    for name, what in (("bots10", "10 bots"), ("bots50", "50 bots")):
        section.target(f"ack p50 with {what} flat against 1 bot", *flat("ack", "p50", by[name]))
        section.target(f"CPU per command with {what} flat against 1 bot", *flat("cpu_ms", "", by[name]))
    memory_growth = by["bots50"]["rss_start"] - first["rss_start"]
    section.target("RSS with 50 bots flat against 1 bot (≤ 10 MB more)", f"+{memory_growth:.1f} MB", memory_growth <= 10)
    section.target("reply p50 with 20 plugins flat against 1 plugin", *flat("reply", "p50", by["plugins20"]))
    section.target("CPU per command with 20 plugins flat against 1 plugin", *flat("cpu_ms", "", by["plugins20"]))
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=RATE)
    parser.add_argument("--duration", type=float, default=DURATION)
    args = parser.parse_args()
    command = f"python benchmarks/growth.py --rate {args.rate:g} --duration {args.duration:g}"
    print(report(run(args.rate, args.duration), args.rate, args.duration, command).markdown())


if __name__ == "__main__":
    main()
