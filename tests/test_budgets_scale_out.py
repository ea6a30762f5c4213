"""A token budget shared by several `slashbots serve` processes on one real Redis, crossed in the middle
of one user's flood; the metrics and `slashbots usage` add up to what the model stand-in counted."""

from __future__ import annotations

import json
import os
import re
import subprocess

import httpx

from slashbots.sandbox.loopback import LoopbackServer
from slashbots.testing import wait_for
from tests.conftest import API_KEY, API_SECRET, final_reply
from tests.support.openai_standin import OpenAIStandIn
from tests.support.processes import SLASHBOTS, Served, instances
from tests.test_scale_out import metric
from tests.test_webhook import command_body, stream_headers

LIMIT = 100  # tokens a day per user
COST = 16  # tokens an answer costs, as the stand-in counts (14 prompt + 2 completion)
RESERVE = 20  # max_completion_tokens, which admission reserves: no answer costs more than its reservation


def config(openai_url: str) -> str:
    return f"""\
stream: {{api_key: {API_KEY}, api_secret: {API_SECRET}}}
bots:
  - command: gpt
    description: Ask
    provider: chatgpt
    channel_types: [messaging]
    identity: {{id: gpt-bot, name: GPT bot}}
    options: {{base_url: "{openai_url}/v1", api_key: sk-test-0123456789abcdef, moderation: false, memory_turns: 0,
               max_completion_tokens: {RESERVE}}}
    rate_limit: none
    budget: {{per_user: {LIMIT} tokens/day}}
server:
  max_loop_lag_ms: 10000  # a machine loaded by the test itself must not turn commands away as "busy"
"""


def used_tokens(servers: list[Served]) -> float:
    return sum(metric(s, "slashbots_tokens_total", command="gpt", kind=kind, source="reported")
               for s in servers for kind in ("prompt", "completion"))


async def test_a_budget_crossed_in_a_flood_over_several_instances(stream, redis_server, tmp_path) -> None:
    standin = OpenAIStandIn()
    path = tmp_path / "bots.yaml"
    with LoopbackServer(standin.app) as openai:
        path.write_text(config(openai.url), encoding="utf-8")
        with instances(path, stream.url, redis_server.url, 3) as servers:
            acks = []
            async with httpx.AsyncClient() as client:
                async def ask(n: int) -> dict:
                    raw = json.dumps(command_body(f"/gpt flood {n}")).encode()
                    answer = await client.post(servers[n % 3].url + "/webhook", content=raw, headers=stream_headers(raw))
                    return answer.json()["message"]

                for n in range(30):  # one user, through every instance, answers settling as the flood goes on
                    acks.append(await ask(n))
                accepted = sum(a["type"] == "regular" for a in acks)
                await final_reply(stream.standin, "gpt-bot", count=accepted, timeout=30)
                await wait_for(lambda: used_tokens(servers) == accepted * COST, timeout=10, what="settlements")
                # Then on, one at a time, each settled before the next, until the budget itself (not the
                # reservations of answers under way) turns the user away.
                while True:
                    acks.append(await ask(len(acks)))
                    if acks[-1]["type"] != "regular":
                        break
                    accepted += 1
                    await wait_for(lambda: used_tokens(servers) == accepted * COST, timeout=20, what="settlement")
                    assert len(acks) < 60

            refused = [a for a in acks if a["type"] == "error"]
            assert any(a["type"] == "error" for a in acks[:30])  # crossed during the flood
            assert accepted + len(refused) == len(acks)
            # Refused while answers under way held the rest, or once it was used up: then told when it renews.
            held = "Your answers still running may use up the 100 tokens of /gpt for today. Please ask again once " \
                   "they have finished."
            used_up = r"You have used your 100 tokens of /gpt for today\. They renew at 00:00 UTC, in (\d+ h )?\d+ min\."
            assert all(a["text"] == held or re.fullmatch(used_up, a["text"]) for a in refused), refused
            assert re.fullmatch(used_up, acks[-1]["text"])
            # Crossed, by less than one answer: no answer costs more than its reservation.
            spent = int(redis_server.client().hget(
                next(iter(redis_server.client().keys("slashbots:*:budget:gpt:user:alice:*"))), "used"))
            assert LIMIT <= spent < LIMIT + COST and spent == accepted * COST
            # What every instance's /metrics counted adds up to what the model counted, and to the refusals made.
            assert used_tokens(servers) == standin.tokens["prompt"] + standin.tokens["completion"] == spent
            assert sum(metric(s, "slashbots_refusals_total", command="gpt", reason="over_budget")
                       for s in servers) == len(refused)
            assert len(standin.bodies("/chat/completions")) == accepted  # a refused command never reached the model

            report = subprocess.run([SLASHBOTS, "usage", "--config", str(path), "--since", "1d"], capture_output=True,
                                    text=True, timeout=60, env={**os.environ, "SLASHBOTS_REDIS_URL": redis_server.url})
            assert report.returncode == 0, report.stderr
            rows = {line.split()[0]: line.split()[1:] for line in report.stdout.splitlines()[2:] if line.strip()}
            prompt, completion = standin.tokens["prompt"], standin.tokens["completion"]
            expected = [f"{prompt:,}", f"{completion:,}", f"{spent:,}", "0"]
            assert rows["/gpt"] == expected and rows["alice"] == expected, report.stdout
