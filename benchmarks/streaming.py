"""Time to first visible text, and Stream writes per reply: our relay against post-once-at-the-end.

The model stand-in streams 600 tokens (``--tokens``) at 30 tokens/s after a 0.5 s first-token
delay. Both approaches run in the same run, side by side, against the Stream stand-in on
loopback: (a) is a bot with streaming on (the relay), (b) the same provider with
``streaming: false``, which posts once when the answer is complete, as the tutorial
slashbots grew from did.

    python benchmarks/streaming.py [--replies N] [--tokens N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from stream_chat import StreamChatAsync  # noqa: E402

from benchmarks.fast_standin import FastStreamStandIn  # noqa: E402
from benchmarks.report import Section  # noqa: E402
from slashbots.app import create_app  # noqa: E402
from slashbots.config import load_config  # noqa: E402
from slashbots.sandbox.loopback import LoopbackServer, bind_loopback  # noqa: E402

KEY, SECRET = "bench-key", "bench-secret-long-enough-for-hs256-signing"
TOKENS, RATE, FIRST_TOKEN = 600, 30.0, 0.5
INTERVAL_MS = 250


def bots_yaml(tokens: int) -> str:
    return f"""\
stream: {{api_key: {KEY}, api_secret: {SECRET}}}
plugins: [slashbots.paced_writers]
bots:
  - command: relay
    description: streams with the relay
    provider: writer
    channel_types: [messaging]
    identity: {{id: relay-bot, name: Relay}}
    update_interval_ms: {INTERVAL_MS}
    options: {{pieces: {tokens}, piece: "tok ", delay: {1 / RATE}, first_delay: {FIRST_TOKEN}}}
  - command: once
    description: posts once at the end
    provider: writer
    channel_types: [messaging]
    identity: {{id: once-bot, name: Once}}
    streaming: false
    options: {{pieces: {tokens}, piece: "tok ", delay: {1 / RATE}, first_delay: {FIRST_TOKEN}}}
"""


def measure(standin: FastStreamStandIn, bot_id: str, cid: str, sent_at: float) -> dict[str, float]:
    """Read the reply's writes off the stand-in's call log: its sends to ``cid``, and patches of those messages."""
    ids = {message["id"] for message in standin.messages(cid) if message["user"]["id"] == bot_id}
    writes = []
    for call in standin.calls:
        if call["status"] != 200:
            continue
        if call["operation"] == "SendMessage" and call["path"].endswith("/" + cid.replace(":", "/") + "/message"):
            if call["json"]["message"]["user"]["id"] == bot_id:
                writes.append((call, call["json"]["message"]["text"]))
        elif call["operation"] == "UpdateMessagePartial" and call["path"].rpartition("/")[2] in ids:
            writes.append((call, call["json"]["set"].get("text")))
    first_text = next(call["at"] for call, text in writes if text)
    return {"first_text": first_text - sent_at, "done": writes[-1][0]["at"] - sent_at, "writes": len(writes)}


async def run(replies: int, tokens: int = TOKENS) -> dict[str, list[dict[str, float]]]:
    standin = FastStreamStandIn(KEY, SECRET)
    with tempfile.TemporaryDirectory() as folder, LoopbackServer(standin.app) as stream:
        path = Path(folder) / "bots.yaml"
        path.write_text(bots_yaml(tokens))
        sock = bind_loopback()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        app = create_app(load_config(path), stream_url=stream.url, public_url=url)
        with LoopbackServer(app, sock=sock):
            while httpx.get(url + "/readyz").status_code != 200:  # synced with the stand-in yet?
                time.sleep(0.02)
            chat = StreamChatAsync(KEY, SECRET, base_url=stream.url)
            await chat.upsert_user({"id": "user", "name": "User"})

            async def one(command: str, index: int) -> tuple[str, str, float]:
                cid = f"messaging:{command}-{index}"
                sent_at = time.monotonic()
                await chat.channel("messaging", cid.partition(":")[2]).send_message({"text": f"/{command} go"}, "user")
                return command, cid, sent_at

            started = await asyncio.gather(*(one(c, i) for c in ("relay", "once") for i in range(replies)))
            await asyncio.sleep(FIRST_TOKEN + tokens / RATE + 2.0)
            await chat.close()
            results: dict[str, list[dict[str, float]]] = {"relay": [], "once": []}
            for command, cid, sent_at in started:
                results[command].append(measure(standin, f"{command}-bot", cid, sent_at))
            hook = statistics.median(call["elapsed"] for call in standin.hook_calls)
            for rows in results.values():
                for row in rows:
                    row["first_token"] = hook + FIRST_TOKEN
    return results


def report(results: dict[str, list[dict[str, float]]], replies: int, tokens: int, command: str) -> Section:
    relay, once = results["relay"], results["once"]

    def median(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(row[key] for row in rows)

    section = Section("3. Time to first visible text, and Stream writes per reply", command)
    section.text.append(
        f"Model stand-in: {tokens} tokens at {RATE:.0f}/s after {FIRST_TOKEN} s; update interval {INTERVAL_MS} ms; "
        f"{replies} replies per approach, concurrently; medians. Times from the user's send; the first token "
        "is the webhook's time plus the model's first-token delay."
    )
    rows = []
    for name, found in (("(a) relay (streaming)", relay), ("(b) post once at the end", once)):
        rows.append([name, f"{median(found, 'first_token'):.3f} s", f"{median(found, 'first_text'):.3f} s",
                     f"{median(found, 'done'):.2f} s", f"{median(found, 'writes'):.0f}"])
    section.table(["approach", "first token", "first visible text", "complete", "Stream writes"], rows)
    lag = median(relay, "first_text") - median(relay, "first_token")
    speedup = median(once, "first_text") / median(relay, "first_text")
    bound = median(relay, "done") / (INTERVAL_MS / 1000) + 3
    section.target("first visible text ≤ 300 ms after the first token", f"{lag * 1000:.0f} ms", lag <= 0.3)
    section.target("first visible text ≥ 10× sooner than post-once", f"{speedup:.1f}×", speedup >= 10)
    section.target("writes per reply ≤ duration / interval + 3", f"{median(relay, 'writes'):.0f} (bound {bound:.0f})",
                   median(relay, "writes") <= bound)
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=3, help="replies per approach, run concurrently")
    parser.add_argument("--tokens", type=int, default=TOKENS, help="tokens per answer")
    args = parser.parse_args()
    command = f"python benchmarks/streaming.py --replies {args.replies} --tokens {args.tokens}"
    print(report(asyncio.run(run(args.replies, args.tokens)), args.replies, args.tokens, command).markdown())


if __name__ == "__main__":
    main()
