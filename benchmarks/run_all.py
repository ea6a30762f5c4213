"""Run every benchmark, in one go, and write BENCHMARKS.md (about 10 minutes on 2 cores).

    python benchmarks/run_all.py [--output BENCHMARKS.md] [--only sustained overload ...]

Each benchmark also runs alone (its section ends with the command); this runs them one
after another, never side by side, so no benchmark's load lands on another's figures.
The analysis of missed targets (profiles, fixes) is kept by hand in benchmarks/profiles.md
and copied in below the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import concurrency, events, growth, http_clients, machine, overload, sse, streaming, sustained  # noqa: E402
from benchmarks.report import Section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _sustained() -> Section:
    rates, duration = list(sustained.RATES), sustained.DURATION
    command = f"python benchmarks/sustained.py --rates {' '.join(map(str, rates))} --duration {duration:g}"
    return sustained.report(sustained.run(rates, duration), duration, command)


def _overload() -> Section:
    command = f"python benchmarks/overload.py --duration {overload.DURATION:g} --connections {overload.CONNECTIONS}"
    return overload.report(overload.run(overload.DURATION, overload.CONNECTIONS), command)


def _streaming() -> Section:
    replies, tokens = 3, streaming.TOKENS
    command = f"python benchmarks/streaming.py --replies {replies} --tokens {tokens}"
    return streaming.report(asyncio.run(streaming.run(replies, tokens)), replies, tokens, command)


def _concurrency() -> Section:
    command = f"python benchmarks/concurrency.py --commands {concurrency.COMMANDS} --seconds {concurrency.SECONDS:g}"
    return concurrency.report(concurrency.run(concurrency.COMMANDS, concurrency.SECONDS), command)


def _sse() -> Section:
    return sse.report(sse.run(sse.MEGABYTES), f"python benchmarks/sse.py --megabytes {sse.MEGABYTES}")


def _growth() -> Section:
    command = f"python benchmarks/growth.py --rate {growth.RATE:g} --duration {growth.DURATION:g}"
    return growth.report(growth.run(growth.RATE, growth.DURATION), growth.RATE, growth.DURATION, command)


def _http_clients() -> Section:
    h = http_clients
    command = (f"python benchmarks/http_clients.py --turns {h.TURNS} --seconds {h.SECONDS:g} "
               f"--slow-seconds {h.SLOW_SECONDS:g} --latency-ms {h.LATENCY_MS:g}")
    return h.report(h.run(), command)


def _events() -> Section:
    command = (f"python benchmarks/events.py --event-rate {events.EVENT_RATE:g} --command-rate {events.COMMAND_RATE:g} "
               f"--duration {events.DURATION:g}")
    return events.report(events.run(events.EVENT_RATE, events.COMMAND_RATE, events.DURATION), events.DURATION, command)


BENCHMARKS: dict[str, Callable[[], Section]] = {
    "sustained": _sustained, "overload": _overload, "streaming": _streaming,
    "concurrency": _concurrency, "sse": _sse, "growth": _growth, "http_clients": _http_clients, "events": _events,
}


def document(sections: list[Section], seconds: float, command: str) -> str:
    lines = [
        "# Benchmarks", "",
        "slashbots against the limit and the alternatives, side by side: every figure is set against a baseline "
        "measured in the same run. Written by `" + command + f"` in {seconds:.0f} s; "
        "see benchmarks/README.md for what each benchmark does and how to install what they need.", "",
        "## The machine", "", *machine.describe(), "",
        "## Targets", "", "| benchmark | target | measured | |", "|---|---|---|---|",
    ]
    for section in sections:
        for target, measured, met in section.targets:
            lines.append(f"| {section.title.split(' ', 1)[0].rstrip('.')} | {target} | {measured} | "
                         f"{'met' if met else '**missed**'} |")
    lines.append("")
    lines += [section.markdown() for section in sections]
    profiles = Path(__file__).with_name("profiles.md")
    if profiles.exists():
        lines.append(profiles.read_text())
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    args = parser.parse_args()
    command = "python benchmarks/run_all.py" + (f" --only {' '.join(args.only)}" if args.only != list(BENCHMARKS) else "")
    started = time.monotonic()
    sections = []
    for name in args.only:
        began = time.monotonic()
        print(f"{name} ...", file=sys.stderr, flush=True)
        sections.append(BENCHMARKS[name]())
        print(sections[-1].markdown(), flush=True)
        print(f"{name}: {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
    Path(args.output).write_text(document(sections, time.monotonic() - started, command))
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
