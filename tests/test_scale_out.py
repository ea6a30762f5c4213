"""Several `slashbots serve` processes on one real Redis: one answer per command, one set of limits, no outage."""

from __future__ import annotations

import asyncio
import json
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx

from tests.conftest import API_KEY, API_SECRET, bot_messages, final_reply
from tests.support.processes import Served, instances
from tests.test_webhook import command_body, post, stream_headers

BOTS = f"""\
stream: {{api_key: {API_KEY}, api_secret: {API_SECRET}}}
bots:
  - command: echo
    description: Repeats what you say
    provider: echo
    channel_types: [messaging]
    identity: {{id: echo-bot, name: Echo bot}}
    rate_limit: {{per_user: 5/minute}}
"""


@contextmanager
def three(tmp_path: Path, stream_url: str, redis_url: str) -> Iterator[list[Served]]:
    config = tmp_path / "bots.yaml"
    config.write_text(BOTS, encoding="utf-8")
    with instances(config, stream_url, redis_url, count=3) as started:
        yield started


def metric(served: Served, name: str, **labels: str) -> float:
    """One sample from the instance's /metrics (0 when it has none yet)."""
    text = httpx.get(served.url + "/metrics").text
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = rf"^{re.escape(name)}{{{re.escape(wanted)}}} (\S+)$" if labels else rf"^{re.escape(name)} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def outcomes(servers: list[Served], outcome: str) -> float:
    return sum(metric(s, "slashbots_webhook_requests_total", command="echo", outcome=outcome) for s in servers)


async def test_started_together_all_ready_and_a_webhook_delivered_to_all_is_answered_once(
        stream, redis_server, tmp_path) -> None:
    with three(tmp_path, stream.url, redis_server.url) as servers:
        raw = json.dumps(command_body("/echo only once")).encode()
        headers = stream_headers(raw)
        answers = await asyncio.gather(*(post(s.url, raw, headers) for s in servers))
        assert [a.status_code for a in answers] == [200, 200, 200]
        # Each instance decided in its ack: exactly one took it, the others saw a duplicate.
        assert (outcomes(servers, "accepted"), outcomes(servers, "duplicate")) == (1, 2)
        [reply] = await final_reply(stream.standin, "echo-bot")
        assert reply["text"] == "only once"
        # Replayed later, to another instance, with a new webhook id: still the same message.
        await post(servers[2].url, raw, stream_headers(raw))
        assert outcomes(servers, "duplicate") == 3
    assert [m["text"] for m in bot_messages(stream.standin, "echo-bot")] == ["only once"]


async def test_one_users_flood_through_every_instance_meets_one_limit(stream, redis_server, tmp_path) -> None:
    with three(tmp_path, stream.url, redis_server.url) as servers:
        answers = []
        for n in range(15):
            raw = json.dumps(command_body(f"/echo flood {n}")).encode()
            answers.append((await post(servers[n % 3].url, raw, stream_headers(raw))).json()["message"])
        refused = [a for a in answers if a.get("type") == "error"]
        assert len(refused) == 10 and all("Slow down: /echo takes 5 per minute per person" in a["text"] for a in refused)
        await final_reply(stream.standin, "echo-bot", count=5)
        other = json.dumps(command_body("/echo from bob", user="bob")).encode()
        assert (await post(servers[0].url, other, stream_headers(other))).json()["message"]["type"] == "regular"


async def test_redis_stopped_and_restarted_under_load_no_5xx_every_accepted_command_answered(
        stream, redis_server, tmp_path) -> None:
    with three(tmp_path, stream.url, redis_server.url) as servers:
        accepted: list[str] = []
        statuses: list[int] = []

        async def load(rounds: int, tag: str) -> None:
            async with httpx.AsyncClient() as client:
                for n in range(rounds):
                    body = command_body(f"/echo {tag} {n}", user=f"user-{tag}-{n}")  # distinct users: no limit in play
                    raw = json.dumps(body).encode()
                    response = await client.post(servers[n % 3].url + "/webhook", content=raw, headers=stream_headers(raw))
                    statuses.append(response.status_code)
                    if response.status_code == 200 and response.json()["message"].get("type") != "error":
                        accepted.append(body["message"]["text"])

        await load(30, "before")
        redis_server.stop()
        await load(60, "during")
        assert all(metric(s, "slashbots_redis_up") == 0 for s in servers)  # each saw the outage and said so
        redis_server.start()  # empty: a restart without persistence

        async def all_back() -> bool:
            await load(3, "probe")
            return all(metric(s, "slashbots_redis_up") == 1 for s in servers)

        await wait_for_async(all_back, timeout=30, what="every instance to share state again")
        await load(30, "after")

        assert statuses and set(statuses) == {200}
        texts = sorted(m["text"] for m in await final_reply(stream.standin, "echo-bot", count=len(accepted), timeout=60))
        assert texts == sorted(a.removeprefix("/echo ") for a in accepted)
        # Sharing is back: a webhook delivered to all three is taken once.
        raw = json.dumps(command_body("/echo after the outage")).encode()
        headers = stream_headers(raw)
        before = outcomes(servers, "accepted")
        await asyncio.gather(*(post(s.url, raw, headers) for s in servers))
        assert outcomes(servers, "accepted") == before + 1
    logs = "\n".join(s.output for s in servers)
    assert logs.count("is unreachable") == 3 and logs.count("is back after") == 3  # once per outage, per instance


async def wait_for_async(predicate, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
