"""Overload: a closed-loop flood (wrk, 64 connections) against slashbots and against the bare app.

wrk cycles through pre-signed bodies, each a command with its own message id
(benchmarks/overload.lua), as fast as the server answers. slashbots should shed load by
answering "busy" (an error only the sender sees) rather than queueing past Stream's 1 s
budget, and every command it accepted must still get its reply. Busy and accepted counts
come from slashbots' /metrics; replies are counted at the Stream stand-in once none is running.

    python benchmarks/overload.py [--duration 20] [--connections 64]

Needs wrk (Debian: apt-get install -y wrk).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import servers, webhooks  # noqa: E402
from benchmarks.report import Section, ms  # noqa: E402

DURATION, CONNECTIONS, THREADS = 20.0, 64, 2
BASELINE_DURATION = 10.0  # a closed loop on the bare app is steady within a second; 10 s is plenty
BODIES = 160_000  # more than either server answers in 20 s here, so no body is sent twice


def write_bodies(path: Path, count: int) -> None:
    with path.open("w") as out:
        for i in range(count):
            raw = webhooks.command("echo", f"o-{i}", f"msg-o-{i}")
            out.write(f"{webhooks.signature(raw)} {raw.decode()}\n")


def flood(url: str, bodies: Path, duration: float, connections: int) -> dict:
    argv = ["wrk", f"-t{THREADS}", f"-c{connections}", f"-d{duration:g}s", "--timeout", "5s",
            "-s", str(Path(__file__).with_name("overload.lua")), url + "/webhook",
            "--", str(bodies), str(THREADS), webhooks.KEY]
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    result["throughput"] = result["requests"] / (result["duration_us"] / 1e6)
    result["wrapped"] = result["requests"] > BODIES  # bodies were sent twice: replays, answered as duplicates
    return result


def run(duration: float, connections: int) -> dict:
    if shutil.which("wrk") is None:
        raise SystemExit("overload needs wrk: apt-get install -y wrk")
    with servers.workdir() as folder:
        bodies = folder / "bodies.txt"
        write_bodies(bodies, BODIES)
        with servers.bare(folder) as bare:
            baseline = flood(bare.url, bodies, min(duration, BASELINE_DURATION), connections)
        with servers.standin(folder) as stream, \
                servers.slashbots(folder, webhooks.bots_yaml([webhooks.echo_bot()]), stream.url) as slashbots:
            before = servers.metrics(slashbots.url)
            ours = flood(slashbots.url, bodies, duration, connections)
            ours["drain_s"] = servers.wait_idle(slashbots.url, timeout=120)
            after = servers.metrics(slashbots.url)
            ours["outcomes"] = {key: after.get(key, 0) - before.get(key, 0) for key in after if key != "in_flight"}
            landed, duplicated = servers.replies(stream.url, "echo-bot")
            ours["landed"] = sum(text.startswith("o-") for text in landed)
            ours["duplicated"] = duplicated
    return {"bare": baseline, "slashbots": ours, "duration": duration, "connections": connections}


def report(results: dict, command: str) -> Section:
    bare, ours = results["bare"], results["slashbots"]
    section = Section("2. Overload (closed-loop flood)", command)
    section.text.append(
        f"wrk, {THREADS} threads, {results['connections']} connections, {results['duration']:g} s "
        f"({min(results['duration'], BASELINE_DURATION):g} s for the bare app), cycling "
        f"{BODIES:,} pre-signed commands with unique ids (benchmarks/overload.lua); the bare app first, then "
        "slashbots (`slashbots serve`, one echo bot, default `max_replies_in_flight: 500`). Latency here is wrk's, "
        "from each request's send (a closed loop waits for each answer before the next)."
    )
    accepted, busy = int(ours["outcomes"].get("accepted", 0)), int(ours["outcomes"].get("busy", 0))
    section.table(
        ["server", "throughput /s", "ack p50", "ack p99", "ack max", "wrk errors (timeouts)",
         "accepted", "busy", "replies landed / accepted"],
        [
            ["bare", f"{bare['throughput']:.0f}", ms(bare["p50_us"] / 1000), ms(bare["p99_us"] / 1000),
             ms(bare["max_us"] / 1000), f"{_errors(bare)} ({bare['timeouts']})", "-", "-", "-"],
            ["slashbots", f"{ours['throughput']:.0f}", ms(ours["p50_us"] / 1000), ms(ours["p99_us"] / 1000),
             ms(ours["max_us"] / 1000), f"{_errors(ours)} ({ours['timeouts']})", accepted, busy,
             f"{ours['landed']} / {accepted}"],
        ],
    )
    others = {k: int(v) for k, v in ours["outcomes"].items() if k not in ("accepted", "busy") and v}
    section.text.append(
        f"Other outcomes at slashbots: {others or 'none'}. Replies still running when the flood stopped finished "
        f"{ours['drain_s']:.1f} s later; replies posted twice: {ours['duplicated']}."
        + (" (wrk wrapped around the bodies: some were replays.)" if ours["wrapped"] or bare["wrapped"] else "")
    )
    p99 = ours["p99_us"] / 1000
    section.target("ack p99 ≤ 250 ms under overload", ms(p99), p99 <= 250)
    section.target("0 accepted commands lose their reply", f"{accepted - ours['landed']} lost",
                   ours["landed"] >= accepted)
    return section


def _errors(result: dict) -> int:
    return sum(result[key] for key in ("connect_errors", "read_errors", "write_errors", "timeouts", "non_2xx"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=DURATION)
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    args = parser.parse_args()
    command = f"python benchmarks/overload.py --duration {args.duration:g} --connections {args.connections}"
    print(report(run(args.duration, args.connections), command).markdown())


if __name__ == "__main__":
    main()
