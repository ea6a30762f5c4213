"""Ack under sustained load (open loop): slashbots against a bare Starlette+uvicorn app, same rates, same run.

Signed commands with unique message ids go to ``POST /webhook`` at a fixed rate, and each
latency is measured from the request's scheduled start (benchmarks/loadgen.py). slashbots
runs as ``slashbots serve`` with one echo bot; its replies go to the Stream stand-in in
another process, where every landed reply is counted. The bare app (benchmarks/bare_app.py)
gets the same load in the same run, rate by rate, just before slashbots.

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


def measure(server: servers.Server, rate: float, duration: float, tag: str, *, replies: bool = False) -> dict:
    """Load ``server`` and summarise: latencies, outcomes, the load generator's own lateness, CPU per command.

    With ``replies``, the server's CPU is read once no reply is running, so it covers the replies' work too.
    """
    before = servers.cpu_seconds(server.pid)
    result = servers.load(server.url, rate, duration, tag)
    if replies:
        servers.wait_idle(server.url)
    result["cpu_ms_per_command"] = (servers.cpu_seconds(server.pid) - before) / result["sent"] * 1000
    result["ack"] = summary_ms(result.pop("latencies"))
    return result


def run(rates: list[float], duration: float) -> list[dict]:
    rows = []
    with servers.workdir() as folder, servers.standin(folder) as stream, servers.bare(folder) as bare, \
            servers.slashbots(folder, webhooks.bots_yaml([webhooks.echo_bot()]), stream.url) as slashbots:
        for rate in rates:
            tag = f"r{rate:g}"
            baseline = measure(bare, rate, duration, tag)
            ours = measure(slashbots, rate, duration, tag, replies=True)
            rows.append({"rate": rate, "bare": baseline, "slashbots": ours})
        landed, duplicated = servers.replies(stream.url, "echo-bot")
    for row in rows:
        ours = row["slashbots"]
        due = [ours["t0"] + i / row["rate"] for i in range(ours["sent"])]
        arrived = [landed.get(f"{ours['tag']}-{i}") for i in range(ours["sent"])]
        ours["landed"] = sum(at is not None for at in arrived)
        ours["reply"] = summary_ms([at - start for at, start in zip(arrived, due) if at is not None])
    return [dict(row, duplicated=duplicated) for row in rows]


def report(rows: list[dict], duration: float, command: str) -> Section:
    section = Section("1. Ack under sustained load (open loop)", command)
    section.text.append(
        f"{duration:g} s per rate; latency from each request's scheduled start. slashbots: `slashbots serve`, "
        "one echo bot, replies to the Stream stand-in in another process. Bare: Starlette+uvicorn that only "
        "verifies the signature and echoes the message (benchmarks/bare_app.py), loaded just before slashbots. "
        "\"reply\" is from the scheduled start to the reply's SendMessage being answered by the stand-in."
    )
    header = ["rate /s", "achieved /s", "bare p50", "bare p99", "bare max", "slashbots p50", "slashbots p99",
              "slashbots max", "refused (busy)", "replies landed / sent", "reply p50", "reply p99",
              "CPU per command, bare / slashbots"]
    table = []
    for row in rows:
        bare, ours = row["bare"], row["slashbots"]
        table.append([
            f"{row['rate']:g}", f"{ours['achieved_rate']:.0f}", ms(bare["ack"]["p50"]), ms(bare["ack"]["p99"]),
            ms(bare["ack"]["max"]), ms(ours["ack"]["p50"]), ms(ours["ack"]["p99"]), ms(ours["ack"]["max"]),
            ours["outcomes"].get("refused", 0), f"{ours['landed']} / {ours['sent']}",
            ms(ours["reply"]["p50"]), ms(ours["reply"]["p99"]),
            f"{bare['cpu_ms_per_command']:.2f} / {ours['cpu_ms_per_command']:.2f} ms",
        ])
    section.table(header, table)
    lag = max(max(row["bare"]["send_lag_p99_ms"], row["slashbots"]["send_lag_p99_ms"]) for row in rows)
    section.text.append(
        f"The load generator's own lateness in sending (p99, worst rate): {lag:.1f} ms; it is included in "
        f"every latency above, for both servers alike. Replies posted twice: {rows[0]['duplicated']}."
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
