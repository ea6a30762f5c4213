"""bots.yaml validation: every rejection names the file, the line, the path and what was expected."""

from __future__ import annotations

import textwrap
from types import MappingProxyType

import pytest

from slashbots.config import ConfigError, load_config, parse_config

GOOD = """\
stream:
  api_key: ${KEY}
  api_secret: ${SECRET:-fallback}
plugins:
  - mycompany.bots.weather
bots:
  - command: gpt
    description: Ask GPT
    args: "[question]"
    provider: chatgpt
    channel_types: [messaging, team]
    identity: {id: chatgpt-bot, name: ChatGPT bot, image: https://example.com/gpt.png}
    options:
      model: gpt-4o-mini
      nested: {list: [1, 2]}
  - command: echo
    description: Echo
    provider: echo
    channel_types: [messaging]
    identity: {id: echo-bot, name: Echo}
"""

BOT = """\
  - command: {command}
    description: d
    provider: echo
    channel_types: [messaging]
    identity: {{id: bot-{index}, name: Bot {index}}}
"""


def parse(text: str, **environ: str):
    return parse_config(textwrap.dedent(text), "bots.yaml", environ)


def rejection(text: str, **environ: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text, **environ)
    return str(caught.value)


def test_a_good_file_loads_into_an_immutable_config() -> None:
    config = parse(GOOD, KEY="k")
    assert config.stream.api_key == "k"
    assert config.stream.api_secret == "fallback"
    assert config.plugins == ("mycompany.bots.weather",)
    gpt, echo = config.bots
    assert (gpt.command, gpt.args, gpt.channel_types) == ("gpt", "[question]", ("messaging", "team"))
    assert gpt.identity.image == "https://example.com/gpt.png"
    assert echo.args == "" and echo.identity.image is None and dict(echo.options) == {}
    assert isinstance(gpt.options, MappingProxyType)
    with pytest.raises(TypeError):
        gpt.options["model"] = "other"  # type: ignore[index]
    with pytest.raises(AttributeError):
        gpt.command = "x"  # type: ignore[misc]
    assert gpt.options["nested"]["list"] == (1, 2)
    assert config.bot("echo") is echo and config.bot("nope") is None


def test_secrets_stay_out_of_the_repr() -> None:
    config = parse(GOOD, KEY="k", SECRET="s3cr3t-value")
    assert "s3cr3t-value" not in repr(config)


def test_env_interpolation_defaults_and_escapes() -> None:
    config = parse(
        """
        bots:
          - command: echo
            description: "costs $$5 in ${REGION:-eu}, ${UNSET}!"
            provider: echo
            channel_types: [messaging]
            identity: {id: e, name: "${NAME}"}
        """,
        NAME="Echo",
    )
    assert config.bots[0].description == "costs $5 in eu, !"
    assert config.bots[0].identity.name == "Echo"


def test_load_config_reads_the_file_and_names_it(tmp_path) -> None:
    path = tmp_path / "bots.yaml"
    path.write_text(GOOD, encoding="utf-8")
    assert load_config(path, {"KEY": "k"}).source == str(path)
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bots: []\n", "bots.yaml:1: bots: expected at least one bot"),
        ("", "the file is empty"),
        ("bots: [\n", "not valid YAML"),
        ("bots:\n  - command: a\n   provider: b\n", "bots.yaml:3: not valid YAML: expected <block end>, but found '<block mapping start>' "
         "(the usual cause is indentation that does not line up, or a missing ':' after a key)"),
        ("- a\n", "expected a mapping, got a list"),
        ("stream: {}\n", "missing required key 'bots'"),
        ("bots: {}\nbot: 1\n", "bot: unknown key; did you mean 'bots'?"),
        ("bots: 3\n", "bots: expected a list, got 3"),
        ("bots: []\nbots: []\n", "bots.yaml:2: bots: duplicate key"),
        ("plugins: [not a module]\nbots: []\n", "plugins[0]: expected a dotted module path"),
        ("stream: {webhook_url: ftp://x}\nbots: []\n", "stream.webhook_url: expected an http(s) URL"),
    ],
)
def test_document_level_rejections(text: str, expected: str) -> None:
    assert expected in rejection(text)


def bots(*entries: str) -> str:
    return "bots:\n" + "".join(entries)


def entry(command: str = "echo", index: int = 0) -> str:
    return BOT.format(command=command, index=index)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (bots(entry("Echo")), "bots[0].command: expected a command name: lowercase letters, digits, '-' and '_', starting with a letter, got 'Echo'"),
        (bots(entry("9lives")), "bots[0].command: expected a command name"),
        (bots(entry("has space")), "bots[0].command: expected a command name"),
        (bots(entry("giphy")), "bots[0].command: 'giphy' is one of Stream's built-in commands"),
        (bots(entry("ban")), "'ban' is one of Stream's built-in commands"),
        (bots(entry("echo", 0), entry("echo", 1)), "bots.yaml:7: bots[1].command: 'echo' is already defined by bots[0]"),
        (bots(entry("x", 0) + "    colour: red\n"), "bots.yaml:7: bots[0].colour: unknown key"),
        (bots(entry("x", 0).replace("    provider: echo\n", "")), "bots[0]: missing required key 'provider'"),
        (bots(entry("x", 0).replace("    description: d\n", "")), "missing required key 'description'"),
        (bots(entry("x", 0).replace("[messaging]", "[]")), "bots[0].channel_types: expected at least one channel type"),
        (bots(entry("x", 0).replace("[messaging]", "messaging")), "bots[0].channel_types: expected a list"),
        (bots(entry("x", 0).replace("[messaging]", "[Bad Type]")), "bots[0].channel_types[0]: expected a channel type name"),
        (bots(entry("x", 0).replace("id: bot-0", "id: 42")), "bots.yaml:6: bots[0].identity.id: expected a Stream user id"),
        (bots(entry("x", 0).replace("id: bot-0", "id: a b")), "bots[0].identity.id: expected a Stream user id"),
        (bots(entry("x", 0).replace(", name: Bot 0", "")), "bots[0].identity: missing required key 'name'"),
        (bots(entry("x", 0).replace("name: Bot 0", "name: Bot 0, nick: b")), "bots[0].identity.nick: unknown key"),
        (bots(entry("x", 0) + "    options: [1]\n"), "bots[0].options: expected a mapping, got a list"),
        (bots(entry("x", 0) + "    args: 7\n"), "bots[0].args: expected a string, got 7"),
        (bots(entry("x", 0) + "    streaming: maybe\n"), "bots[0].streaming: expected true or false"),
        (bots(entry("x", 0) + "    update_interval_ms: 5\n"), "bots[0].update_interval_ms: expected an integer from 50 to 10000"),
        (bots(entry("x", 0) + "    description: again\n"), "bots[0].description: duplicate key"),
        (bots(entry("x", 0).replace("description: d", "description: ${NOPE}")), "bots[0].description: expected a non-empty string, got an empty string"),
        (bots(entry("x", 0).replace("description: d", "description:")), "bots[0].description: expected a non-empty string, got nothing"),
        (bots(entry("x", 0) + "    tools: current_time\n"), "bots.yaml:7: bots[0].tools: expected a list, got 'current_time'"),
        (bots(entry("x", 0) + "    tools: [7]\n"), "bots[0].tools[0]: expected a tool name such as current_time, got 7"),
        (bots(entry("x", 0) + "    tools: [a, b, a]\n"), "bots[0].tools[2]: 'a' is already listed"),
        (bots(entry("x", 0), entry("y", 1).replace("bot-1, name: Bot 1", "bot-0, name: Other")),
         "bots[1].identity: identity 'bot-0' is also used by bots[0] with a different name"),
        (bots(entry("x", 0) + "    rate_limit: off\n"),
         "bots.yaml:7: bots[0].rate_limit: expected a mapping such as {per_user: 5/minute}, or none to turn limits off; "
         "got False"),
        (bots(entry("x", 0) + "    rate_limit:\n"), "bots[0].rate_limit: expected a mapping such as {per_user: 5/minute}, "
                                                    "or none, got nothing"),
        (bots(entry("x", 0) + "    rate_limit: {per_user: 5 a minute}\n"),
         "bots[0].rate_limit.per_user: expected a rate such as '5/minute'"),
        (bots(entry("x", 0) + "    budget: {per_person: 5 tokens/day}\n"),
         "bots.yaml:7: bots[0].budget.per_person: unknown key; did you mean 'per_user'? expected one of: per_bot, "
         "per_channel, per_user"),
        (bots(entry("x", 0) + "    budget: {per_user: 5000/day}\n"),
         "bots.yaml:7: bots[0].budget.per_user: expected a budget such as '50000 tokens/day' or '2000000 tokens/month' "
         "(calendar days and months, in UTC), got '5000/day'"),
        (bots(entry("x", 0) + "    budget: {per_bot: 5000 tokens/year}\n"), "bots[0].budget.per_bot: expected a budget"),
        (bots(entry("x", 0) + "    budget: 5000 tokens/day\n"), "bots[0].budget: expected a mapping, got '5000 tokens/day'"),
        (bots(entry("x", 0) + "    mentions: yes please\n"), "bots.yaml:7: bots[0].mentions: expected true or false"),
        (bots(entry("x", 0) + "    threads: 1\n"), "bots[0].threads: expected true or false, got 1"),
        (bots(entry("x", 0) + "    stop: often\n"), "bots[0].stop: expected true or false, got 'often'"),
        (bots(entry("a", 0) + "    mentions: true\n", entry("b", 0) + "    mentions: true\n"),
         "bots.yaml:13: bots[1].mentions: bots[0] (/a) and bots[1] (/b) both answer mentions of 'bot-0'"),
    ],
)
def test_bot_rejections(text: str, expected: str) -> None:
    message = rejection(text)
    assert message.startswith("bots.yaml:"), message
    assert expected in message, message


def test_a_bot_lists_the_tools_its_model_may_call() -> None:
    config = parse(bots(entry("x", 0) + "    tools: [current_time, roll_dice]\n", entry("y", 1)))
    assert config.bots[0].tools == ("current_time", "roll_dice")
    assert config.bots[1].tools == ()  # none unless listed


def test_at_most_fifty_commands() -> None:
    fifty = bots(*(entry(f"c{i}", i) for i in range(50)))
    assert len(parse(fifty).bots) == 50
    message = rejection(bots(*(entry(f"c{i}", i) for i in range(51))))
    assert "bots: Stream allows at most 50 commands per app; found 51" in message


def test_bots_may_share_an_identity_that_agrees() -> None:
    text = bots(entry("a", 0), entry("b", 0))
    assert [bot.identity.id for bot in parse(text).bots] == ["bot-0", "bot-0"]


def test_rate_limit_none_is_off_and_no_rate_limit_leaves_it_to_the_provider() -> None:
    config = parse(bots(entry("x", 0) + "    rate_limit: none\n", entry("y", 1),
                        entry("z", 2) + "    rate_limit: {per_channel: 9/hour}\n"))
    off, unset, own = config.bots
    assert off.rate_limits == {} and unset.rate_limits is None
    assert [(scope, rate.text) for scope, rate in own.rate_limits.items()] == [("channel", "9 per hour")]


def test_budgets_and_access_rules_load() -> None:
    config = parse(bots(entry("x", 0) + "    allow: {roles: [user], channels: ['messaging:general']}\n"
                        "    deny: {users: [mallory]}\n    budget: {per_user: 50000 tokens/day, per_bot: '1,000 tokens/month'}\n"))
    [bot] = config.bots
    assert bot.access.allow.roles == {"user"} and bot.access.allow.channels == {"messaging:general"}
    assert bot.access.deny.users == {"mallory"} and not bot.access.deny.roles
    assert {scope: (b.tokens, b.period) for scope, b in bot.budgets.items()} == {"user": (50000, "day"),
                                                                                   "bot": (1000, "month")}


def test_conversation_switches_are_off_unless_turned_on() -> None:
    config = parse(bots(entry("x", 0) + "    mentions: true\n    threads: true\n    stop: true\n", entry("y", 1)))
    x, y = config.bots
    assert (x.mentions, x.threads, x.stop, x.needs_events) == (True, True, True, True)
    assert (y.mentions, y.threads, y.stop, y.needs_events) == (False, False, False, False)


def test_bots_sharing_an_identity_may_both_answer_in_threads_if_only_one_takes_mentions() -> None:
    text = bots(entry("a", 0) + "    mentions: true\n    threads: true\n", entry("b", 0) + "    threads: true\n")
    assert [(bot.mentions, bot.threads) for bot in parse(text).bots] == [(True, True), (False, True)]


def test_events_url_and_thread_memory() -> None:
    config = parse("stream:\n  events_url: https://bots.example.com/stream-events\n"
                   "server:\n  thread_memory_days: 30\n" + bots(entry("x", 0)))
    assert config.stream.events_url == "https://bots.example.com/stream-events"
    assert config.server.thread_memory_days == 30
    assert parse(bots(entry("x", 0))).server.thread_memory_days == 7
    assert "stream.events_url: expected an http(s) URL" in rejection("stream:\n  events_url: bots\n" + bots(entry("x", 0)))
    assert "server.thread_memory_days: expected a number" in rejection("server:\n  thread_memory_days: 0\n" + bots(entry("x", 0)))
