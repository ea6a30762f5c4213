"""Durable replies on a real Redis, with real processes: killed, stopped and paused instances lose nothing."""

from __future__ import annotations

import json
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.conftest import API_KEY, API_SECRET, bot_messages, wait_for
from tests.support.processes import Served, instances, stop
from tests.test_webhook import command_body, post, stream_headers

LEASE = 2.0
PIECES, DELAY = 30, 0.1  # a three-second answer


def signed_bot(*, lease: float, pieces: int, delay: float, interval_ms: int, server: str) -> str:
    """bots.yaml for one bot whose answers name the process that wrote them (slashbots.paced_writers)."""
    return f"""\
stream: {{api_key: {API_KEY}, api_secret: {API_SECRET}}}
plugins: [slashbots.paced_writers]
server: {{reply_lease_seconds: {lease}, {server}}}
bots:
  - command: slow
    description: Takes its time, and signs what it writes
    provider: signed
    channel_types: [messaging]
    identity: {{id: slow-bot, name: Slow bot}}
    update_interval_ms: {interval_ms}
    options: {{pieces: {pieces}, delay: {delay}}}
"""


BOTS = signed_bot(lease=LEASE, pieces=PIECES, delay=DELAY, interval_ms=50, server="shutdown_timeout: 0.5")


def whole_answer_by(pid: int) -> str:
    return " ".join(f"{pid}:{index}" for index in range(PIECES))


@contextmanager
def two(tmp_path: Path, stream_url: str, redis_url: str) -> Iterator[list[Served]]:
    config = tmp_path / "bots.yaml"
    config.write_text(BOTS, encoding="utf-8")
    with instances(config, stream_url, redis_url, count=2) as started:
        yield started


async def start_answer(stream, served: Served) -> None:
    raw = json.dumps(command_body("/slow tell me")).encode()
    response = await post(served.url, raw, stream_headers(raw))
    assert response.json()["message"]["type"] == "regular"
    pid = served.process.pid
    await wait_for(lambda: any(f"{pid}:3" in m["text"] for m in bot_messages(stream.standin, "slow-bot")),
                   what="the answer to be streaming")


def the_one_reply(stream) -> dict:
    [reply] = bot_messages(stream.standin, "slow-bot")
    return reply


async def finished(stream, timeout: float) -> dict:
    return await wait_for(lambda: (r := bot_messages(stream.standin, "slow-bot")) and not r[0].get("generating") and r[0],
                          timeout=timeout, what="the final text")


async def test_a_killed_instances_reply_is_finished_by_another_in_the_same_message(
        stream, redis_server, tmp_path) -> None:
    with two(tmp_path, stream.url, redis_server.url) as (first, second):
        await start_answer(stream, first)
        first.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        reply = await finished(stream, timeout=2 * LEASE + PIECES * DELAY + 10)
        took = time.monotonic() - killed
    assert reply["text"] == whole_answer_by(second.process.pid)
    assert the_one_reply(stream)["id"] == reply["id"]  # one message: the rerun wrote into the same one
    # Claimed within 2 x the lease, then the answer's own time (3 s), with room for a loaded machine.
    assert took < 2 * LEASE + PIECES * DELAY + 3, took
    assert "taking over the reply to slow:" in second.output


async def test_sigterm_hands_a_running_reply_over_to_be_finished_whole(stream, redis_server, tmp_path) -> None:
    with two(tmp_path, stream.url, redis_server.url) as (first, second):
        await start_answer(stream, first)
        stop(first)  # SIGTERM; shutdown_timeout 0.5 s is too short for this answer
        assert "handed 1 running replies back for another instance to finish" in first.output
        assert "Answer interrupted" not in the_one_reply(stream)["text"]
        reply = await finished(stream, timeout=LEASE + PIECES * DELAY + 10)
    assert reply["text"] == whole_answer_by(second.process.pid)
    assert the_one_reply(stream)["id"] == reply["id"]


async def test_a_paused_instance_that_wakes_without_its_lease_writes_nothing_more(
        stream, redis_server, tmp_path) -> None:
    with two(tmp_path, stream.url, redis_server.url) as (first, second):
        await start_answer(stream, first)
        first.process.send_signal(signal.SIGSTOP)
        await wait_for(lambda: f"{second.process.pid}:0" in the_one_reply(stream)["text"], timeout=2 * LEASE + 10,
                       what="the other instance to take the reply over")
        taken_over = len(stream.standin.calls)
        first.process.send_signal(signal.SIGCONT)
        reply = await finished(stream, timeout=PIECES * DELAY + 10)
        stop(first)  # once it has exited, everything it wrote has landed (or never will)
        assert "is no longer ours" in first.output or "lease_lost" in first.output, first.output
    assert reply["text"] == whole_answer_by(second.process.pid)
    late = [call for call in stream.standin.calls[taken_over:]
            if call["operation"] in ("UpdateMessagePartial", "SendMessage", "SendEvent")
            and f"{first.process.pid}:" in json.dumps(call["json"])]
    assert late == [], late  # nothing the paused instance wrote landed after the new owner took over
    assert the_one_reply(stream)["text"] == whole_answer_by(second.process.pid)
