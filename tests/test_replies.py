"""Replies through providers: identities, threads, refusals, failures, and plugins loaded from bots.yaml."""

from __future__ import annotations

import logging
import sys
import textwrap
from pathlib import Path

import pytest

from slashbots.config import ConfigError, load_config
from slashbots.plugin_manager import PluginError, build_providers, plugin_manager
from tests.conftest import ECHO_BOT, bot_messages, final_reply, send, wait_for

THIRD_PARTY = '''
from slashbots import ProviderError, Refusal, hookimpl


class Shout:
    def __init__(self, options):
        self.suffix = options.get("suffix", "!")

    async def respond(self, request):
        if not request.args.strip():
            raise Refusal("Nothing to shout about.")
        if request.args == "crash":
            raise RuntimeError("secret internals: token=abc123")
        if request.args == "partial":
            yield "Half an ans"
            yield "wer"
            raise ProviderError("the model went away.")
        if request.args == "history":
            earlier = await request.history(limit=10)
            yield " | ".join(f"{m.user_id}:{m.command or '-'}:{m.text}" for m in earlier)
            return
        yield request.args.upper() + self.suffix


@hookimpl
def register_providers(register):
    register("shout", Shout)
'''

SHOUT_BOT = """\
  - command: shout
    description: Shouts
    args: "[text]"
    provider: shout
    channel_types: [messaging]
    identity: {id: shout-bot, name: Shout bot}
    options: {suffix: "!!!"}
"""


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A plugin module that is not part of slashbots, importable by name like an operator's own."""
    package = tmp_path / "acme_bots"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "shout.py").write_text(textwrap.dedent(THIRD_PARTY))
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [name for name in sys.modules if name.startswith("acme_bots")]:
        monkeypatch.delitem(sys.modules, name)  # each test's package lives in its own tmp_path
    return "acme_bots.shout"


@pytest.fixture
def two_bots(serve, third_party):
    return serve(ECHO_BOT + SHOUT_BOT, extra=f"plugins:\n  - {third_party}\n")


async def test_the_answer_is_posted_as_the_bot_in_the_same_channel(two_bots, chat) -> None:
    await send(chat, "/shout hello", cid="messaging:random")
    [reply] = await final_reply(two_bots.standin, "shout-bot", cid="messaging:random")
    assert reply["text"] == "HELLO!!!"
    assert reply["user"]["name"] == "Shout bot"
    assert reply["ai_generated"] is True
    assert reply["generating"] is False
    assert reply.get("parent_id") is None


async def test_a_command_in_a_thread_is_answered_in_the_thread(two_bots, chat) -> None:
    parent = await send(chat, "What shall we shout?")
    await send(chat, "/echo in the thread", parent_id=parent["id"])
    [reply] = await final_reply(two_bots.standin, "echo-bot")
    assert reply["parent_id"] == parent["id"]
    assert reply["text"] == "in the thread"


async def test_a_refusal_is_the_bots_answer(two_bots, chat) -> None:
    await send(chat, "/shout")
    [reply] = await final_reply(two_bots.standin, "shout-bot")
    assert reply["text"] == "Nothing to shout about."
    await send(chat, "/echo")
    [reply] = await final_reply(two_bots.standin, "echo-bot")
    assert reply["text"] == "Nothing to echo. Try: /echo hello"


async def test_a_crash_becomes_an_apology_and_the_details_go_to_the_log(two_bots, chat, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="slashbots")
    await send(chat, "/shout crash")
    [reply] = await final_reply(two_bots.standin, "shout-bot")
    assert reply["text"] == "⚠️ Sorry, Shout bot could not answer (an internal error). The details are in the server log."
    assert "abc123" not in reply["text"]
    assert "RuntimeError: secret internals" in caplog.text


async def test_a_failure_after_some_text_keeps_it_and_says_it_was_interrupted(two_bots, chat) -> None:
    await send(chat, "/shout partial")
    [reply] = await final_reply(two_bots.standin, "shout-bot")
    assert reply["text"] == "Half an answer\n\n⚠️ Answer interrupted: the model went away."
    # The indicator follows the final text (events never hold text up), so it may land a moment later.
    await wait_for(lambda: [e.get("ai_state") for e in two_bots.standin.events("messaging:general")][-1:] == ["AI_STATE_ERROR"],
                   what="the error indicator")


async def test_history_holds_earlier_messages_but_not_this_command(two_bots, chat) -> None:
    await send(chat, "hello there")
    await send(chat, "/echo first")
    await final_reply(two_bots.standin, "echo-bot")
    await send(chat, "/shout history", user="bob")
    [reply] = await final_reply(two_bots.standin, "shout-bot")
    assert reply["text"] == "alice:-:hello there | alice:echo:/echo first | echo-bot:-:first"


def test_two_plugins_registering_one_provider_name_is_a_start_up_error(third_party, tmp_path, write_config) -> None:
    (tmp_path / "acme_bots" / "echo_again.py").write_text(textwrap.dedent('''
        from slashbots import hookimpl

        @hookimpl
        def register_providers(register):
            register("echo", object)
    '''))
    config = load_config(write_config(ECHO_BOT, extra="plugins:\n  - acme_bots.echo_again\n"))
    with pytest.raises(PluginError, match="provider 'echo' is registered by both 'slashbots.plugins.echo' and 'acme_bots.echo_again'"):
        build_providers(config, plugin_manager(config))


def test_an_unknown_provider_points_at_the_bot(write_config) -> None:
    config = load_config(write_config(ECHO_BOT.replace("provider: echo", "provider: nope")))
    with pytest.raises(ConfigError, match=r"bots.yaml:8: bots\[0\].provider: unknown provider 'nope'; expected one of: .*echo"):
        build_providers(config, plugin_manager(config))


def test_bad_options_point_at_the_bot(write_config) -> None:
    config = load_config(write_config(ECHO_BOT + "    options: {prefix: 1, colour: red}\n"))
    with pytest.raises(ConfigError, match=r"bots\[0\].options: echo: unknown option\(s\): colour"):
        build_providers(config, plugin_manager(config))


def test_a_plugin_module_that_does_not_import_points_at_the_line(write_config) -> None:
    config = load_config(write_config(ECHO_BOT, extra="plugins:\n  - acme_bots.missing_module\n"))
    with pytest.raises(ConfigError, match=r"bots.yaml:5: plugins\[0\]: cannot import 'acme_bots.missing_module'"):
        plugin_manager(config)


async def test_replies_for_other_channels_do_not_mix(two_bots, chat) -> None:
    await send(chat, "/echo one", cid="messaging:a")
    await send(chat, "/echo two", cid="messaging:b")
    [a] = await final_reply(two_bots.standin, "echo-bot", cid="messaging:a")
    [b] = await final_reply(two_bots.standin, "echo-bot", cid="messaging:b")
    assert (a["text"], b["text"]) == ("one", "two")
    assert bot_messages(two_bots.standin, "echo-bot", "messaging:general") == []


async def test_a_broken_error_reply_hook_still_ends_the_reply(serve, third_party, tmp_path, chat) -> None:
    (tmp_path / "acme_bots" / "broken.py").write_text(textwrap.dedent('''
        from slashbots import hookimpl

        @hookimpl
        def error_reply(request, error):
            raise KeyError("the hook itself is broken")
    '''))
    served = serve(SHOUT_BOT, extra=f"plugins:\n  - {third_party}\n  - acme_bots.broken\n")
    await send(chat, "/shout crash")
    [reply] = await final_reply(served.standin, "shout-bot")
    assert reply["text"] == "⚠️ Sorry, Shout bot could not answer. The details are in the server log."
