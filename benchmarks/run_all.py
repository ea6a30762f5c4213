"""Run every benchmark, in one go, and write BENCHMARKS.md (about 16 minutes on 2 cores).

    python benchmarks/run_all.py [--output BENCHMARKS.md] [--only sustained overload ...] [--keep]

Each benchmark also runs alone (its section ends with the command); this runs them one
after another, never side by side, so no benchmark's load lands on another's figures.
With --only, the file holds just those sections, unless --keep is given: then the other
sections already in the output file, and their rows of the targets table, stay as they
were (from their own earlier run, which the head of the file then names).
The analysis of missed targets (profiles, fixes) is kept by hand in benchmarks/profiles.md
and copied in below the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import (  # noqa: E402
    ceiling,
    concurrency,
    events,
    growth,
    http_clients,
    machine,
    overload,
    recovery,
    redis_mode,
    sse,
    streaming,
    sustained,
    two_instances,
)
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


def _redis_mode() -> Section:
    rates, duration = list(redis_mode.RATES), redis_mode.DURATION
    command = f"python benchmarks/redis_mode.py --rates {' '.join(map(str, rates))} --duration {duration:g}"
    return redis_mode.report(redis_mode.run(rates, duration), command)


def _two_instances() -> Section:
    t = two_instances
    command = f"python benchmarks/two_instances.py --seconds {t.SECONDS:g} --turns {t.TURNS}"
    return t.report(t.run(t.SECONDS, t.TURNS), command)


def _ceiling() -> Section:
    c = ceiling
    command = f"python benchmarks/ceiling.py --streams {c.STREAMS} --seconds {c.SECONDS:g} --answer-seconds {c.ANSWER_SECONDS:g}"
    return c.report(c.run(c.STREAMS, c.SECONDS, c.ANSWER_SECONDS), command)


def _recovery() -> Section:
    r = recovery
    command = f"python benchmarks/recovery.py --kills {r.KILLS} --every {r.EVERY:g} --lease {r.LEASE:g} --rate {r.RATE:g}"
    return r.report(r.run(r.KILLS, r.EVERY, r.LEASE, r.RATE), command)


def _events() -> Section:
    command = (f"python benchmarks/events.py --event-rate {events.EVENT_RATE:g} --command-rate {events.COMMAND_RATE:g} "
               f"--duration {events.DURATION:g}")
    return events.report(events.run(events.EVENT_RATE, events.COMMAND_RATE, events.DURATION), events.DURATION, command)


BENCHMARKS: dict[str, Callable[[], Section]] = {
    "sustained": _sustained, "overload": _overload, "streaming": _streaming,
    "concurrency": _concurrency, "sse": _sse, "growth": _growth, "http_clients": _http_clients,
    "redis_mode": _redis_mode, "two_instances": _two_instances, "ceiling": _ceiling, "recovery": _recovery,
    "events": _events,
}


def _number(title: str) -> int:
    return int(title.split(".", 1)[0].split()[-1])


def kept(path: Path, rerun: set[int]) -> tuple[list[tuple[int, str]], list[str], str]:
    """The numbered sections of an earlier BENCHMARKS.md that this run does not redo, the rows of its
    targets table that belong to them, and the line that said how the earlier file was written."""
    if not path.exists():
        return [], [], ""
    text = path.read_text()
    sections = []
    for chunk in re.split(r"(?m)^(?=## )", text):
        match = re.match(r"## (\d+)\. ", chunk)
        if match and int(match.group(1)) not in rerun:
            sections.append((int(match.group(1)), chunk.rstrip("\n") + "\n"))
    keep = {number for number, _ in sections}
    rows = [line for line in text.splitlines()
            if (row := re.match(r"\| (\d+) \| ", line)) and int(row.group(1)) in keep]
    written = re.search(r"Written by (.*?); see benchmarks/README\.md", text)
    date = re.search(r"(?m)^- date: (.*)$", text)
    said = f"«Written by {written.group(1)}»" if written else "nothing on how it was written"
    return sections, rows, said + (f", on {date.group(1)}" if date else "")


def document(sections: list[Section], seconds: float, command: str,
             earlier: tuple[list[tuple[int, str]], list[str], str] = ([], [], "")) -> str:
    old_sections, old_rows, old_written = earlier
    written = "Written by `" + command + f"` in {seconds:.0f} s"
    if old_sections:
        numbers = ", ".join(str(number) for number, _ in old_sections)
        written += (f": sections {', '.join(str(_number(s.title)) for s in sections)}. Sections {numbers} are kept as "
                    f"they were in the earlier file, whose head said {old_written} (the machine below is this run's)")
    lines = [
        "# Benchmarks", "",
        "slashbots against the limit and the alternatives, side by side: every figure is set against a baseline "
        "measured in the same run. " + written + "; "
        "see benchmarks/README.md for what each benchmark does and how to install what they need.", "",
        "## The machine", "", *machine.describe(), "",
        "## Targets", "", "| benchmark | target | measured | |", "|---|---|---|---|",
    ]
    rows: list[tuple[int, str]] = [(int(line.split("|")[1]), line) for line in old_rows]
    for section in sections:
        for target, measured, met in section.targets:
            rows.append((_number(section.title), f"| {_number(section.title)} | {target} | {measured} | "
                                                 f"{'met' if met else '**missed**'} |"))
    lines += [line for _, line in sorted(rows, key=lambda row: row[0])]
    lines.append("")
    parts = old_sections + [(_number(section.title), section.markdown()) for section in sections]
    lines += [text for _, text in sorted(parts, key=lambda part: part[0])]
    profiles = Path(__file__).with_name("profiles.md")
    if profiles.exists():
        lines.append(profiles.read_text())
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--keep", action="store_true",
                        help="keep the output file's sections that --only does not rerun, and their targets")
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
    earlier = kept(Path(args.output), {_number(section.title) for section in sections}) if args.keep else ([], [], "")
    if args.keep:
        command += " --keep"
    Path(args.output).write_text(document(sections, time.monotonic() - started, command, earlier))
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
