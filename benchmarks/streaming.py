"""Time to first visible text, and Stream writes per reply: our relay against post-once-at-the-end.

The model stand-in streams 600 tokens at 30 tokens/s after a 0.5 s first-token delay. Both
approaches run in the same run, side by side, against the Stream stand-in on loopback: (a) is
a bot with streaming on (the relay), (b) the same provider with ``streaming: false``, which
posts once when the answer is complete, as the tutorial slashbots grew from did.

    python benchmarks/streaming.py [--replies N]
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

from core.app import create_app  # noqa: E402
from core.config import load_config  # noqa: E402
from core.sandbox.loopback import LoopbackServer, bind_loopback  # noqa: E402
from core.sandbox.stream_standin import StreamStandIn  # noqa: E402

KEY, SECRET = "bench-key", "bench-secret-long-enough-for-hs256-signing"
TOKENS, RATE, FIRST_TOKEN = 600, 30.0, 0.5
INTERVAL_MS = 250

BOTS = f"""\
stream: {{api_key: {KEY}, api_secret: {SECRET}}}
plugins: [tests.support.writers]
bots:
  - command: relay
    description: streams with the relay
    provider: writer
    channel_types: [messaging]
    identity: {{id: relay-bot, name: Relay}}
    update_interval_ms: {INTERVAL_MS}
    options: {{pieces: {TOKENS}, piece: "tok ", delay: {1 / RATE}, first_delay: {FIRST_TOKEN}}}
  - command: once
    description: posts once at the end
    provider: writer
    channel_types: [messaging]
    identity: {{id: once-bot, name: Once}}
    streaming: false
    options: {{pieces: {TOKENS}, piece: "tok ", delay: {1 / RATE}, first_delay: {FIRST_TOKEN}}}
"""


def measure(standin: StreamStandIn, bot_id: str, cid: str, sent_at: float) -> dict[str, float]:
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


async def run(replies: int) -> dict[str, list[dict[str, float]]]:
    standin = StreamStandIn(KEY, SECRET)
    with tempfile.TemporaryDirectory() as folder, LoopbackServer(standin.app) as stream:
        path = Path(folder) / "bots.yaml"
        path.write_text(BOTS)
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
            await asyncio.sleep(FIRST_TOKEN + TOKENS / RATE + 2.0)
            await chat.close()
            results: dict[str, list[dict[str, float]]] = {"relay": [], "once": []}
            for command, cid, sent_at in started:
                results[command].append(measure(standin, f"{command}-bot", cid, sent_at))
            hook = statistics.median(call["elapsed"] for call in standin.hook_calls)
            for rows in results.values():
                for row in rows:
                    row["first_token"] = hook + FIRST_TOKEN
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=3, help="replies per approach, run concurrently")
    args = parser.parse_args()
    results = asyncio.run(run(args.replies))
    relay, once = results["relay"], results["once"]

    def median(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(row[key] for row in rows)

    duration = median(relay, "done")
    print(f"model stand-in: {TOKENS} tokens at {RATE:.0f}/s after {FIRST_TOKEN}s; interval {INTERVAL_MS} ms; "
          f"{args.replies} replies per approach, concurrently; medians")
    print(f"{'approach':<28}{'first token':>12}{'first text':>12}{'complete':>10}{'writes':>8}")
    for name, rows in (("(a) relay (streaming)", relay), ("(b) post once at the end", once)):
        print(f"{name:<28}{median(rows, 'first_token'):>11.3f}s{median(rows, 'first_text'):>11.3f}s"
              f"{median(rows, 'done'):>9.2f}s{median(rows, 'writes'):>8.0f}")
    lag = median(relay, "first_text") - median(relay, "first_token")
    speedup = median(once, "first_text") / median(relay, "first_text")
    bound = duration / (INTERVAL_MS / 1000) + 3
    print(f"first visible text after first token: {lag * 1000:.0f} ms (target <= 300 ms) "
          f"{'OK' if lag <= 0.3 else 'MISSED'}")
    print(f"first visible text, post-once / relay: {speedup:.1f}x sooner (target >= 10x) {'OK' if speedup >= 10 else 'MISSED'}")
    print(f"writes per reply: {median(relay, 'writes'):.0f} (target <= duration/interval + 3 = {bound:.0f}) "
          f"{'OK' if median(relay, 'writes') <= bound else 'MISSED'}")
    print(f"reproduce: python benchmarks/streaming.py --replies {args.replies}")


if __name__ == "__main__":
    main()
