"""The event webhook under ordinary chatter, beside the command webhook, in the same run and the same server.

Once a Stream app sends ``message.new`` to /events, every message of the app arrives there,
nearly all of it not for our bots. This sends ordinary chatter (benchmarks/webhooks.py:
people talking in the channel and in their own threads, other bots' messages) to /events at
2,000 messages a second, and signed commands to /webhook at 1,000 a second, open loop
(benchmarks/loadgen.py). One ``slashbots serve``, one echo bot with ``mentions``, ``threads``
and ``stop`` all on, so every message goes through the whole test of what is for us. The two
take turns, four spells each of a quarter of the duration, so a noisy spell of the shared
machine lands on both alike. Replies to the commands go to the Stream stand-in in another
process; a reply in a thread nobody's bot answered in costs one read of it, once per thread.
The load generator plays Stream's event webhook, as it plays the command webhook: the hook
sync registered at the stand-in is removed, so the stand-in (on the same two cores) spends
nothing delivering the replies' own events back; the chatter includes such messages instead.

    python benchmarks/events.py [--event-rate 2000] [--command-rate 1000] [--duration 20]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import servers, webhooks  # noqa: E402
from benchmarks.report import Section, ms  # noqa: E402
from benchmarks.sustained import TURNS, combine, turn  # noqa: E402

EVENT_RATE = 2000.0
COMMAND_RATE = 1000.0
DURATION = 20.0


def run(event_rate: float, command_rate: float, duration: float) -> dict:
    bot = webhooks.echo_bot(mentions=True, threads=True, stop=True)
    with servers.workdir() as folder, servers.standin(folder) as stream, \
            servers.slashbots(folder, webhooks.bots_yaml([bot]), stream.url) as slashbots:
        servers.remove_event_hooks(stream.url)
        turns: dict[str, list[dict]] = {"events": [], "commands": []}
        for n in range(TURNS):
            turns["events"].append(turn(slashbots, event_rate, duration / TURNS, f"e{n}", events=True))
            turns["commands"].append(turn(slashbots, command_rate, duration / TURNS, f"c{n}", replies=True))
        outcomes = servers.event_outcomes(slashbots.url)
        landed, _ = servers.replies(stream.url, "echo-bot")
    commands = combine(turns["commands"])
    commands["landed"] = sum(1 for t in turns["commands"] for i in range(t["sent"]) if f"{t['tag']}-{i}" in landed)
    return {"events": combine(turns["events"]), "commands": commands, "outcomes": outcomes,
            "event_rate": event_rate, "command_rate": command_rate}


def report(result: dict, duration: float, command: str) -> Section:
    events, commands = result["events"], result["commands"]
    section = Section("12. The event webhook under ordinary chatter", command)
    section.text.append(
        f"One `slashbots serve` with an echo bot that has `mentions`, `threads` and `stop` on. /events gets ordinary "
        f"chatter at {result['event_rate']:g}/s (message.new as Stream sends it, with 12 members: people talking, one "
        f"in ten a reply in one of 50 human threads, one in forty our own bot's message and one in forty another AI "
        f"bot's); /webhook gets signed "
        f"commands at {result['command_rate']:g}/s. They take {TURNS} turns of {duration / TURNS:g} s each, "
        "alternately, open loop, latency from each request's scheduled start. CPU per request is the server's CPU "
        "over its turns divided by the requests; for commands it includes writing their replies."
    )
    header = ["webhook", "rate /s", "achieved /s", "generator late p99", "ack p50", "ack p99", "ack max",
              "answered 2xx", "CPU per request"]
    rows = []
    for name, row, rate in (("/events (chatter)", events, result["event_rate"]),
                            ("/webhook (commands)", commands, result["command_rate"])):
        rows.append([name, f"{rate:g}", f"{row['achieved_rate']:.0f}", ms(row["send_lag_p99_ms"]), ms(row["ack"]["p50"]),
                     ms(row["ack"]["p99"]), ms(row["ack"]["max"]),
                     f"{row['outcomes'].get('accepted', 0)} / {row['sent']}", f"{row['cpu_ms_per_command']:.3f} ms"])
    section.table(header, rows)
    outcomes = ", ".join(f"{name} {count:.0f}" for name, count in sorted(result["outcomes"].items()))
    section.text.append(
        f"What /events decided (slashbots_events_total, warm-up included): {outcomes}. Command replies landed: "
        f"{commands['landed']} / {commands['sent']}."
    )
    section.target(f"/events at {result['event_rate']:g}/s: ack p99 no worse than /webhook's at "
                   f"{result['command_rate']:g}/s", f"{ms(events['ack']['p99'])} vs {ms(commands['ack']['p99'])}",
                   events["ack"]["p99"] <= commands["ack"]["p99"])
    section.target("no chatter answered", f"{result['outcomes'].get('accepted', 0):.0f} accepted",
                   not result["outcomes"].get("accepted"))
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--event-rate", type=float, default=EVENT_RATE)
    parser.add_argument("--command-rate", type=float, default=COMMAND_RATE)
    parser.add_argument("--duration", type=float, default=DURATION)
    args = parser.parse_args()
    command = (f"python benchmarks/events.py --event-rate {args.event_rate:g} --command-rate {args.command_rate:g} "
               f"--duration {args.duration:g}")
    print(report(run(args.event_rate, args.command_rate, args.duration), args.duration, command).markdown())


if __name__ == "__main__":
    main()
