"""Budgets, usage and default rate limits end to end: Stream stand-in, slashbots, and a model stand-in that counts."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from slashbots import hookimpl
from slashbots.access import Asker
from slashbots.budgets import charges, over_budget
from slashbots.config import parse_config
from slashbots.plugin_manager import PluginError
from slashbots.sandbox.loopback import LoopbackServer
from slashbots.testing import call, wait_for
from slashbots.usage_report import report
from tests.conftest import Served
from tests.support.openai_standin import ErrorReply, OpenAIStandIn, error_body
from tests.test_scale_out import metric
from tests.test_webhook import command_body, post, stream_headers

RENEWS = r"They renew at 00:00 UTC, in (\d+ h )?\d+ min\.$"


@pytest.fixture
def openai() -> Iterator[tuple[OpenAIStandIn, str]]:
    standin = OpenAIStandIn()
    with LoopbackServer(standin.app) as server:
        yield standin, server.url


def gpt(url: str, extra: str = "", command: str = "gpt") -> str:
    return f"""\
  - command: {command}
    description: Ask
    provider: chatgpt
    channel_types: [messaging]
    identity: {{id: {command}-bot, name: GPT bot}}
    options: {{base_url: "{url}/v1", api_key: sk-test-0123456789abcdef, moderation: false, memory_turns: 0}}
{extra}"""


async def ask(served: Served, text: str, *, user: str = "alice", wait: bool = True) -> dict[str, Any]:
    """The ack's message for ``text``; with ``wait``, once every answer has ended and been settled."""
    raw = json.dumps(command_body(text, user=user)).encode()
    answer = (await post(served.url, raw, stream_headers(raw))).json()["message"]
    if wait:
        await idle(served)
    return answer


async def idle(served: Served) -> None:
    await wait_for(lambda: not served.app.state.replies.running, timeout=20, what="answers to end")


def tokens(served: Served, command: str = "gpt") -> dict[tuple[str, str], float]:
    return {(kind, source): metric(served, "slashbots_tokens_total", command=command, kind=kind, source=source)
            for kind in ("prompt", "completion") for source in ("reported", "estimated")}


async def test_over_budget_the_sender_is_told_when_it_renews_and_the_metrics_match_the_model(serve, openai) -> None:
    standin, url = openai
    served = serve(gpt(url, "    budget: {per_user: 50 tokens/day}\n"))
    # Each answer costs 16 tokens (14 + 2, as the stand-in counts): 0, 16, 32 and 48 leave room, 64 does not.
    answers = [await ask(served, f"/gpt question {n}") for n in range(5)]
    assert [a["type"] for a in answers] == ["regular"] * 4 + ["error"]
    assert re.fullmatch(r"You have used your 50 tokens of /gpt for today\. " + RENEWS, answers[4]["text"])
    assert (await ask(served, "/gpt my turn", user="bob"))["type"] == "regular"  # a budget per user
    assert standin.tokens == {"prompt": 70, "completion": 10}
    assert tokens(served) == {("prompt", "reported"): 70, ("completion", "reported"): 10,
                              ("prompt", "estimated"): 0, ("completion", "estimated"): 0}
    assert metric(served, "slashbots_refusals_total", command="gpt", reason="over_budget") == 1
    assert len(standin.bodies("/chat/completions")) == 5  # the refused question cost nothing


async def test_an_estimate_is_counted_as_one_and_budgets_hold_on_it(serve, openai) -> None:
    standin, url = openai
    served = serve(gpt(url, "    budget: {per_channel: 40 tokens/day}\n"))
    refusal = error_body("Unrecognized request argument supplied: stream_options", "invalid_request_error")
    standin.chats.append(ErrorReply(400, refusal))
    first = await ask(served, "/gpt hi")
    assert first["type"] == "regular"
    counted = tokens(served)
    assert counted[("prompt", "reported")] == counted[("completion", "reported")] == 0
    assert counted[("completion", "estimated")] == 3 and counted[("prompt", "estimated")] > 30  # "Hello there!"
    answer = await ask(served, "/gpt more", user="bob")
    assert re.fullmatch(r"This channel has used its 40 tokens of /gpt for today\. " + RENEWS, answer["text"])


async def test_usage_over_tool_rounds_adds_up_to_what_the_scripted_model_counted(slashbots) -> None:
    model = slashbots.model(call("current_time", zone="Europe/Paris"), "It is a quarter to ten.")
    bots = slashbots.start([{"command": "gpt", "provider": "chatgpt", "tools": ["current_time"],
                             "options": model.options, "budget": {"per_bot": "1000 tokens/month"}}])
    await bots.command("/gpt what time is it in Paris?")
    text = httpx.get(bots.url + "/metrics").text
    found = {kind: float(re.search(rf'slashbots_tokens_total{{command="gpt",kind="{kind}",source="reported"}} (\S+)',
                                   text).group(1)) for kind in ("prompt", "completion")}
    assert found == {"prompt": model.tokens["prompt"], "completion": model.tokens["completion"]}
    assert model.tokens["completion"] == 6 + 6  # the call in six pieces, then the answer's six words


async def test_chatgpt_bots_are_rate_limited_by_default(serve, openai) -> None:
    _, url = openai
    served = serve(gpt(url))
    answers = [await ask(served, f"/gpt quick {n}", wait=False) for n in range(11)]
    assert [a["type"] for a in answers] == ["regular"] * 10 + ["error"]
    # One more every 6 seconds, after a burst of ten (less the time the ten took to send).
    assert re.fullmatch(r"Slow down: /gpt takes 10 per minute per person\. Try again in [1-6] seconds\.",
                        answers[10]["text"])
    assert (await ask(served, "/gpt hello", user="bob", wait=False))["type"] == "regular"
    await idle(served)


async def test_a_rate_limit_in_bots_yaml_replaces_the_default_whole_and_none_turns_it_off(serve, openai) -> None:
    _, url = openai
    served = serve(gpt(url, "    rate_limit: none\n") + gpt(url, "    rate_limit: {per_channel: 100/minute}\n", "ask"))
    for command in ("gpt", "ask"):
        answers = [await ask(served, f"/{command} quick {n}", wait=False) for n in range(12)]
        assert all(a["type"] == "regular" for a in answers), command
    await idle(served)


class Thrifty:
    default_rate_limit = {"per_user": "2/minute", "per_bot": "100/hour"}

    def __init__(self, options: dict[str, Any]) -> None:
        pass

    async def respond(self, request: Any) -> Any:
        yield "ok"


@hookimpl
def register_providers(register: Any) -> None:
    register("thrifty", Thrifty)


class Plugin:
    register_providers = staticmethod(register_providers)


async def test_any_provider_may_declare_a_default_rate_limit(slashbots) -> None:
    bots = slashbots.start([{"command": "cheap", "provider": "thrifty"}], plugins=[Plugin()])
    assert await bots.command("/cheap") == "ok"
    assert await bots.command("/cheap") == "ok"
    with pytest.raises(AssertionError, match=r"Slow down: /cheap takes 2 per minute per person, 100 per hour in all"):
        await bots.command("/cheap")


@pytest.mark.parametrize(("declared", "error"), [
    ({"per_person": "2/minute"}, r"provider 'thrifty' from 'Plugin': default_rate_limit has 'per_person'; "
                                 r"expected any of per_user, per_channel, per_bot"),
    ({"per_user": "lots"}, r"provider 'thrifty' from 'Plugin': default_rate_limit\['per_user'\]: expected a rate "
                           r"such as '5/minute'"),
    ("10/minute", r"provider 'thrifty' from 'Plugin': default_rate_limit must be a mapping"),
])
def test_a_bad_default_rate_limit_stops_start_up_naming_the_provider(slashbots, monkeypatch, declared, error) -> None:
    monkeypatch.setattr(Thrifty, "default_rate_limit", declared)
    with pytest.raises(PluginError, match=error):
        slashbots.start([{"command": "cheap", "provider": "thrifty"}], plugins=[Plugin()])


def test_the_readmes_worked_example_shows_what_users_really_see() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Who may use a bot, and how much", 1)[1].split("\n## ", 1)[0]
    example = re.search(r"```yaml\n(.*?)```", section, re.DOTALL).group(1)
    [bot] = parse_config(f"stream: {{api_key: k, api_secret: s}}\n{example}", "README.md", {}).bots
    now = datetime(2026, 11, 26, 20, 47, 30, tzinfo=timezone.utc).timestamp()
    user, everyone = charges("gpt", bot.budgets, user_id="alice", cid="team:ops", now=now)
    seen = [
        bot.access.refusal("gpt", Asker("gus", "guest", "team:ops")),
        bot.access.refusal("gpt", Asker("alice", "user", "messaging:general")),
        over_budget("gpt", [user], [], now),
        over_budget("gpt", [], [user], now),
        over_budget("gpt", [everyone], [], now),
    ]
    assert bot.access.refusal("gpt", Asker("alice", "user", "team:ops")) is None
    for text in seen:
        assert f"`{text}`" in section, text
    shown = re.search(r"```console\n\$ slashbots usage --since 7d\n(.*?)```", section, re.DOTALL).group(1)
    totals = {"gpt": {"alice": {"prompt": 18230, "completion": 4112, "estimated": 0},
                      "bob": {"prompt": 9050, "completion": 2261, "estimated": 0}}}
    days = [f"2026-11-{day}" for day in range(20, 27)]
    assert shown == "\n".join(report(totals, days, "redis://redis:6379")) + "\n"
