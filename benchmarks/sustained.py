"""Ack under sustained load (open loop): slashbots against a bare Starlette+uvicorn app, same rates, same run.

Signed commands with unique message ids go to ``POST /webhook`` at a fixed rate, and each
latency is measured from the request's scheduled start (benchmarks/loadgen.py). slashbots
runs as ``slashbots serve`` with one echo bot; its replies go to the Stream stand-in in
another process, where every landed reply is counted. The bare app (benchmarks/bare_app.py)
gets the same load in the same run: at each rate the two take turns, four spells each of a
quarter of the duration, so a noisy spell of the shared machine lands on both alike.

    python benchmarks/sustained.py [--rates 100 300 1000] [--duration 20]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import servers, webhooks  # noqa: E402
from benchmarks.report import Section, ms  # noqa: E402
from benchmarks.stats import summary_ms  # noqa: E402

RATES = (100, 300, 1000)
DURATION = 20.0
TURNS = 4  # each rate's duration, in turns taken by the two servers one after the other


def turn(server: servers.Server, rate: float, seconds: float, tag: str, *, replies: bool = False,
         **load: object) -> dict:
    """One spell of load on ``server``, and the server's CPU seconds for it.

    With ``replies``, the CPU is read once no reply is running, so it covers the replies' work too.
    ``load`` goes to the load generator (``events=True``: chatter to /events).
    """
    before = servers.cpu_seconds(server.pid)
    result = servers.load(server.url, rate, seconds, tag, **load)
    if replies:
        servers.wait_idle(server.url)
    result["cpu"] = servers.cpu_seconds(server.pid) - before
    return result


def combine(turns: list[dict]) -> dict:
    sent = sum(t["sent"] for t in turns)
    outcomes: dict[str, int] = {}
    for t in turns:
        for key, count in t["outcomes"].items():
            outcomes[key] = outcomes.get(key, 0) + count
    return {
        "sent": sent, "outcomes": outcomes, "turns": turns,
        "ack": summary_ms([latency for t in turns for latency in t["latencies"]]),
        "achieved_rate": sum(t["achieved_rate"] for t in turns) / len(turns),
        "send_lag_p99_ms": max(t["send_lag_p99_ms"] for t in turns),
        "cpu_ms_per_command": sum(t["cpu"] for t in turns) / sent * 1000,
    }


def run(rates: list[float], duration: float) -> list[dict]:
    rows = []
    with servers.workdir() as folder, servers.standin(folder) as stream, servers.bare(folder) as bare, \
            servers.slashbots(folder, webhooks.bots_yaml([webhooks.echo_bot()]), stream.url) as slashbots:
        for rate in rates:
            # The two servers take turns, so a noisy spell of this shared machine lands on both alike.
            turns: dict[str, list[dict]] = {"bare": [], "slashbots": []}
            for n in range(TURNS):
                tag = f"r{rate:g}t{n}"
                turns["bare"].append(turn(bare, rate, duration / TURNS, tag))
                turns["slashbots"].append(turn(slashbots, rate, duration / TURNS, tag, replies=True))
            rows.append({"rate": rate, "bare": combine(turns["bare"]), "slashbots": combine(turns["slashbots"])})
        landed, duplicated = servers.replies(stream.url, "echo-bot")
    for row in rows:
        ours = row["slashbots"]
        delays = []
        for t in ours["turns"]:
            for i in range(t["sent"]):
                at = landed.get(f"{t['tag']}-{i}")
                if at is not None:
                    delays.append(at - (t["t0"] + i / row["rate"]))
        ours["landed"] = len(delays)
        ours["reply"] = summary_ms(delays)
    return [dict(row, duplicated=duplicated) for row in rows]


def report(rows: list[dict], duration: float, command: str) -> Section:
    section = Section("1. Ack under sustained load (open loop)", command)
    section.text.append(
        f"{duration:g} s per rate; latency from each request's scheduled start. slashbots: `slashbots serve`, "
        "one echo bot, replies to the Stream stand-in in another process. Bare: Starlette+uvicorn that only "
        "verifies the signature and echoes the message (benchmarks/bare_app.py); at each rate the two take "
        f"{TURNS} turns of {duration / TURNS:g} s each, alternately (at a rate slashbots cannot sustain, each of its "
        "turns starts from an idle server, which flatters it). "
        "\"reply\" is from the scheduled start to the reply's SendMessage being answered by the stand-in."
    )
    header = ["rate /s", "achieved /s", "generator late p99", "bare p50", "bare p99", "bare max", "slashbots p50", "slashbots p99",
              "slashbots max", "refused (busy)", "replies landed / sent", "reply p50", "reply p99",
              "CPU per command, bare / slashbots"]
    table = []
    for row in rows:
        bare, ours = row["bare"], row["slashbots"]
        table.append([
            f"{row['rate']:g}", f"{ours['achieved_rate']:.0f}",
            ms(max(bare["send_lag_p99_ms"], ours["send_lag_p99_ms"])), ms(bare["ack"]["p50"]), ms(bare["ack"]["p99"]),
            ms(bare["ack"]["max"]), ms(ours["ack"]["p50"]), ms(ours["ack"]["p99"]), ms(ours["ack"]["max"]),
            ours["outcomes"].get("refused", 0), f"{ours['landed']} / {ours['sent']}",
            ms(ours["reply"]["p50"]), ms(ours["reply"]["p99"]),
            f"{bare['cpu_ms_per_command']:.2f} / {ours['cpu_ms_per_command']:.2f} ms",
        ])
    section.table(header, table)
    section.text.append(
        "\"generator late\" is the load generator's own lateness in sending (p99, the worse of its two servers' "
        "turns): it is included in every latency above, for both servers alike, and when it is large the machine "
        f"itself stalled during that rate. Replies posted twice: {rows[0]['duplicated']}."
    )
    for row in rows:
        bare, ours, rate = row["bare"]["ack"], row["slashbots"]["ack"], row["rate"]
        if rate < 1000:
            limit = 2 * bare["p99"] + 2
            section.target(f"{rate:g}/s: ack p99 ≤ 2 × bare p99 + 2 ms", f"{ms(ours['p99'])} (limit {ms(limit)})",
                           ours["p99"] <= limit)
        else:
            section.target(f"{rate:g}/s: ack p99 ≤ 50 ms", ms(ours["p99"]), ours["p99"] <= 50)
        sent, landed = row["slashbots"]["sent"], row["slashbots"]["landed"]
        section.target(f"{rate:g}/s: every reply lands", f"{landed} / {sent}", landed == sent)
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=list(RATES))
    parser.add_argument("--duration", type=float, default=DURATION)
    args = parser.parse_args()
    command = f"python benchmarks/sustained.py --rates {' '.join(f'{r:g}' for r in args.rates)} --duration {args.duration:g}"
    print(report(run(args.rates, args.duration), args.duration, command).markdown())


if __name__ == "__main__":
    main()
