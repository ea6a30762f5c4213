"""SSE parsing: our parser (plugins/chatgpt/sse.py) against httpx-sse and the openai package's decoder.

All three read the same 50 MB recording of Chat Completions streams, in OpenAI's wire format
(``completion`` below writes it), cut into the same reads of random sizes (1 B to
16 KB, so reads end inside lines and inside multibyte characters, as network reads do). Each
is driven the way its library drives it: our parser is fed ``response.iter_bytes()`` as the
ChatGPT provider feeds it; httpx-sse runs ``EventSource(response).iter_sse()``; the openai
package runs ``SSEDecoder().iter_bytes(response.iter_bytes())``, as its ``Stream`` does. The
response is an ``httpx.Response`` over the recorded reads, so all three pay the same httpx
costs. The parsers take turns, two rounds; the best round of each counts. Only parsing is timed:
events are put in one spelling and compared afterwards.

    python benchmarks/sse.py [--megabytes 50]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from httpx_sse import EventSource  # noqa: E402
from openai._streaming import SSEDecoder  # noqa: E402

from benchmarks.report import Section  # noqa: E402
from slashbots.plugins.chatgpt.sse import SSEParser  # noqa: E402

MEGABYTES, ROUNDS = 50, 2
WORDS = ["the", " model", " writes", " tokens", ",", " café", " naïve", " — ", " 日本語", " 🙂", "\n", " `code`",
         " \"quoted\"", " 42", " résumé", " über", " snake_case", " {json}", " ∑", " ok"]

Normal = tuple[str, str, str, int | None]  # (event, data, id, retry), however a library spells "none"


def completion(pieces: list[str], *, comment: bool) -> bytes:
    """One streamed chat completion as OpenAI sends it: a chunk per piece, the finish, usage, [DONE]."""
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_790_000_000,
            "model": "gpt-4o-mini-2024-07-18"}
    chunks = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    chunks += [{**head, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]} for piece in pieces]
    chunks += [{**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
               {**head, "choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": len(pieces),
                                                 "total_tokens": 20 + len(pieces)}}]
    events = [f"data: {json.dumps(chunk, ensure_ascii=False, separators=(',', ':'))}\n\n" for chunk in chunks]
    return ((": keep-alive\n\n" if comment else "") + "".join(events) + "data: [DONE]\n\n").encode()


def recording(megabytes: int, seed: int = 0) -> list[bytes]:
    """Completions back to back until ``megabytes``, cut into reads of random sizes."""
    rng = random.Random(seed)
    parts, size = [], 0
    while size < megabytes * 1_000_000:
        pieces = ["".join(rng.choices(WORDS, k=rng.randint(1, 3))) for _ in range(rng.randint(20, 400))]
        body = completion(pieces, comment=rng.random() < 0.1)
        parts.append(body)
        size += len(body)
    data = b"".join(parts)
    reads, at = [], 0
    while at < len(data):
        step = rng.randint(1, 16384)
        reads.append(data[at : at + step])
        at += step
    return reads


def response(reads: list[bytes]) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream; charset=utf-8"}, content=iter(reads))


def ours(reads: list[bytes]) -> list:
    parser, events = SSEParser(), []
    for chunk in response(reads).iter_bytes():
        events += parser.feed(chunk)
    parser.close()
    return events


def httpx_sse(reads: list[bytes]) -> list:
    return list(EventSource(response(reads)).iter_sse())


def openai_decoder(reads: list[bytes]) -> list:
    return list(SSEDecoder().iter_bytes(response(reads).iter_bytes()))


PARSERS: dict[str, Callable[[list[bytes]], list]] = {
    "slashbots (plugins/chatgpt/sse.py)": ours, "httpx-sse": httpx_sse, "openai (SSEDecoder)": openai_decoder,
}


def normal(events: list) -> list[Normal]:
    """One spelling for all three: openai says None where the others say "message" and ""."""
    return [(e.event or "message", e.data, e.id or "", e.retry) for e in events]


def run(megabytes: int) -> dict:
    reads = recording(megabytes)
    size = sum(map(len, reads))
    best = {name: float("inf") for name in PARSERS}
    events: dict[str, list[Normal]] = {}
    for round in range(ROUNDS):
        for name, parse in PARSERS.items():
            # Each parser starts from the same heap: no garbage, and no earlier results for the GC to walk.
            gc.collect()
            started = time.perf_counter()
            found = parse(reads)
            best[name] = min(best[name], time.perf_counter() - started)
            if round == ROUNDS - 1:
                events[name] = normal(found)
            del found
    reference = events["httpx-sse"]
    return {
        "bytes": size, "reads": len(reads), "events": {name: len(found) for name, found in events.items()},
        "seconds": best, "agree": {name: found == reference for name, found in events.items()},
        "first_difference": {name: _first_difference(found, reference) for name, found in events.items()},
    }


def _first_difference(found: Iterable[Normal], reference: list[Normal]) -> int | None:
    found = list(found)
    for index, (a, b) in enumerate(zip(found, reference)):
        if a != b:
            return index
    return None if len(found) == len(reference) else min(len(found), len(reference))


def report(result: dict, command: str) -> Section:
    section = Section("5. SSE parsing", command)
    megabytes = result["bytes"] / 1e6
    section.text.append(
        f"{megabytes:.1f} MB of recorded Chat Completions streams in {result['reads']:,} reads of 1 B–16 KB; "
        f"best of {ROUNDS} rounds, parsers taking turns; every parser's events compared with httpx-sse's "
        "(event type, data, last event id, retry)."
    )
    baseline = result["seconds"]["httpx-sse"]
    rows = []
    for name, seconds in result["seconds"].items():
        agree = "identical" if result["agree"][name] else f"differ from event {result['first_difference'][name]}"
        rows.append([name, f"{megabytes / seconds:.0f} MB/s", f"{baseline / seconds:.2f}×",
                     f"{result['events'][name]:,}", agree])
    section.table(["parser", "throughput", "vs httpx-sse", "events", "events vs httpx-sse"], rows)
    ratio = baseline / result["seconds"]["slashbots (plugins/chatgpt/sse.py)"]
    section.target("our parser ≥ 1.0× httpx-sse's throughput", f"{ratio:.2f}×", ratio >= 1.0)
    section.target("identical events from all three", "identical" if all(result["agree"].values()) else "differ",
                   all(result["agree"].values()))
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=MEGABYTES)
    args = parser.parse_args()
    print(report(run(args.megabytes), f"python benchmarks/sse.py --megabytes {args.megabytes}").markdown())


if __name__ == "__main__":
    main()
