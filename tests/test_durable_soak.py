"""A soak: 500 commands over three instances on one Redis while a random one is killed every few seconds.

0 lost, 0 duplicated, 0 left generating; the recovery times are printed (run with -s to see them).
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import statistics
import time

import httpx
import pytest

from slashbots.leases import reply_message_id
from tests.support.processes import LOAD_BALANCER, Served, start_process, stop, wait_ready
from tests.test_durable_replies import signed_bot
from tests.test_webhook import command_body, stream_headers

COMMANDS, RATE, KILL_EVERY = 500, 25.0, (2.0, 4.0)
LEASE, PIECES, DELAY = 2.0, 10, 0.1
BOTS = signed_bot(lease=LEASE, pieces=PIECES, delay=DELAY, interval_ms=100, server="max_loop_lag_ms: 5000")


@pytest.mark.slow
async def test_random_kills_lose_nothing_duplicate_nothing_and_leave_nothing_generating(
        stream, redis_server, tmp_path) -> None:
    config = tmp_path / "bots.yaml"
    config.write_text(BOTS, encoding="utf-8")
    env = {"SLASHBOTS_REDIS_URL": redis_server.url, "SLASHBOTS_PUBLIC_URL": LOAD_BALANCER}
    rng = random.Random(7)
    live: list[Served] = [start_process(config, stream.url, env=env) for _ in range(3)]
    for served in live:
        wait_ready(served)
    accepted: dict[str, tuple[int, float]] = {}  # message id -> (pid that took it, when)
    kills: dict[int, float] = {}  # pid -> when it was killed
    everyone: list[Served] = list(live)
    sent: list[str] = []  # every command's message id, accepted or not

    async def send_all() -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            for n in range(COMMANDS):
                body = command_body(f"/slow {n}", user=f"user-{n}")
                raw = json.dumps(body).encode()
                target = rng.choice([s for s in live if s.process.poll() is None])
                sent.append(body["message"]["id"])
                try:
                    response = await client.post(target.url + "/webhook", content=raw, headers=stream_headers(raw))
                except httpx.TransportError:
                    # Died under us. If it died after recording the job but before answering, the job
                    # is finished elsewhere: an answer to a command Stream saw fail, but only one.
                    pass
                else:
                    if response.status_code == 200 and response.json()["message"].get("type") == "regular":
                        accepted[body["message"]["id"]] = (target.process.pid, time.monotonic())
                await asyncio.sleep(1 / RATE)

    async def kill_some(sending: asyncio.Task[None]) -> None:
        while not sending.done():
            await asyncio.sleep(rng.uniform(*KILL_EVERY))
            victim = rng.choice(live)
            victim.process.send_signal(signal.SIGKILL)
            victim.process.wait()
            kills[victim.process.pid] = time.monotonic()
            live.remove(victim)
            replacement = start_process(config, stream.url, env=env)
            await asyncio.to_thread(wait_ready, replacement)
            live.append(replacement)
            everyone.append(replacement)

    finals: dict[str, float] = {}  # message id -> when its reply was seen final (polled all along)

    def settle() -> bool:
        for message_id in list(accepted):
            if message_id not in finals:
                message = stream.standin.message(reply_message_id(f"slow:{message_id}", 0))
                if message is not None and not message.get("generating"):
                    finals[message_id] = time.monotonic()
        return len(finals) == len(accepted)

    async def watch(sending: asyncio.Task[None]) -> None:
        deadline = None
        while not (sending.done() and settle()):
            settle()
            if sending.done():
                deadline = deadline or time.monotonic() + 60
                assert time.monotonic() < deadline, f"{len(accepted) - len(finals)} replies never finished"
            await asyncio.sleep(0.05)

    try:
        sending = asyncio.create_task(send_all())
        await asyncio.gather(sending, kill_some(sending), watch(sending))
    finally:
        for served in everyone:
            if served.process.poll() is None:
                stop(served)

    replies = [m for m in stream.standin.messages("messaging:general") if m["user"]["id"] == "slow-bot"]
    by_id = {m["id"]: m for m in replies}
    lost = [mid for mid in accepted if reply_message_id(f"slow:{mid}", 0) not in by_id]
    generating = [m["id"] for m in replies if m.get("generating")]
    # A second answer to a command could only be a second message (the ids are derived from it),
    # or one message holding two runs' text (checked by `whole`).
    answers_per_command = {mid: sum(1 for m in replies if m["id"] == reply_message_id(f"slow:{mid}", 0)) for mid in sent}
    duplicated = sum(count - 1 for count in answers_per_command.values() if count > 1)
    duplicated += len(replies) - sum(answers_per_command.values())  # answers to no command at all
    wrong = [m["text"] for m in replies if not whole(m["text"])]
    recovered = [finals[mid] - kills[pid] for mid, (pid, _) in accepted.items()
                 if pid in kills and not by_id[reply_message_id(f"slow:{mid}", 0)]["text"].startswith(f"{pid}:")]
    print(f"\nsoak: {len(accepted)} accepted of {COMMANDS}, {len(kills)} kills, {len(recovered)} replies taken over; "
          f"recovery from kill to final text: p50 {statistics.median(recovered) if recovered else 0:.2f}s, "
          f"max {max(recovered, default=0):.2f}s (lease {LEASE}s, answers {PIECES * DELAY:.1f}s)")
    assert len(accepted) > COMMANDS * 0.8
    assert (lost, duplicated, generating, wrong) == ([], 0, [], [])
    assert kills and recovered
    assert max(recovered) < 2 * LEASE + PIECES * DELAY + 5


def whole(text: str) -> bool:
    """One run's answer, start to end: every piece, in order, from one process."""
    pieces = text.split()
    pids = {piece.split(":")[0] for piece in pieces}
    return len(pids) == 1 and [piece.split(":")[1] for piece in pieces] == [str(i) for i in range(PIECES)]

