"""Every hook, exercised through a running bot; and a test that fails when a hook has none.

Modelled on datasette's ``test_plugin_hooks_have_tests``: a hook added to core/hookspecs.py
without a ``test_hook_<name>`` somewhere under tests/ fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from slashbots import Refusal, hookimpl
from slashbots.config import ConfigError
from slashbots.plugin_manager import PluginError, PluginManager, plugin_manager, providers

TESTS = Path(__file__).resolve().parent


class Crash:
    def __init__(self, options):
        self.error = options.get("error", "runtime")

    async def respond(self, request):
        if request.args == "refuse":
            raise Refusal("No.")
        raise {"runtime": RuntimeError, "timeout": TimeoutError, "network": ConnectionError}[request.args]("secret")
        yield  # an async generator, like any provider


class CrashPlugin:
    @hookimpl
    def register_providers(self, register):
        register("crash", Crash)


CRASH_BOT = {"command": "crash", "provider": "crash"}


async def test_hook_register_providers(slashbots) -> None:
    class Shout:
        def __init__(self, options):
            self.suffix = options.pop("suffix", "!")

        async def respond(self, request):
            yield request.args.upper() + self.suffix

    class ShoutPlugin:
        @hookimpl
        def register_providers(self, register):
            register("shout", Shout)

    bots = slashbots.start([{"command": "shout", "provider": "shout", "options": {"suffix": "!!"}}], plugins=[ShoutPlugin()])
    assert await bots.command("/shout hey") == "HEY!!"
    pm = plugin_manager(entry_points=False)
    pm.register(ShoutPlugin(), "shouting")
    assert providers(pm)["shout"].plugin == "shouting"


async def test_hook_error_reply(slashbots) -> None:
    class Wording:
        @hookimpl
        def error_reply(self, request, error):
            return None if isinstance(error, TimeoutError) else f"/{request.command} tripped over a {type(error).__name__}."

    bots = slashbots.start([CRASH_BOT], plugins=[CrashPlugin(), Wording()])
    assert await bots.command("/crash runtime") == "⚠️ /crash tripped over a RuntimeError."
    # A plugin that returns None leaves the words to the next: in the end, the built-in default.
    assert await bots.command("/crash timeout") == (
        "⚠️ Sorry, Crash bot could not answer (it timed out). The details are in the server log."
    )
    assert await bots.command("/crash refuse") == "No."  # refusals never reach the hook


async def test_the_default_apology_is_a_plugin_that_speaks_last(slashbots) -> None:
    bots = slashbots.start([CRASH_BOT], plugins=[CrashPlugin()])
    assert await bots.command("/crash network") == (
        "⚠️ Sorry, Crash bot could not answer (a network error). The details are in the server log."
    )
    pm = bots.app.state.plugins
    pm.unregister(name="slashbots.plugins.default_error_reply")
    # With no plugin to word it, core's own last resort: the user still learns what happened.
    assert await bots.command("/crash runtime") == "⚠️ Sorry, Crash bot could not answer. The details are in the server log."


def test_a_misspelled_hook_is_refused_naming_the_right_one() -> None:
    class Typo:
        @hookimpl
        def register_provider(self, register):
            register("typo", object)

    with pytest.raises(PluginError, match=r"plugin 'typo' implements 'register_provider', which is not a slashbots "
                                          r"hook; did you mean 'register_providers'\?"):
        PluginManager().register(Typo(), "typo")


def test_a_hook_without_hookimpl_is_refused() -> None:
    class Unmarked:
        def register_providers(self, register):
            register("unmarked", object)

    with pytest.raises(PluginError, match=r"register_providers\(\) is not marked @hookimpl"):
        PluginManager().register(Unmarked(), "unmarked")


def test_an_unknown_provider_says_how_providers_are_installed(slashbots) -> None:
    class Idle:
        @hookimpl
        def error_reply(self, request, error):
            return None

    with pytest.raises(ConfigError) as raised:
        slashbots.start([{"command": "roll", "provider": "dice"}], plugins=[Idle()])
    message = str(raised.value)
    assert "unknown provider 'dice'; expected one of: chatgpt, echo" in message
    assert "loaded plugins that registered no provider:" in message and "Idle" in message
    assert "`pip install` a package that declares a `slashbots` entry point" in message
    assert "`plugins:` in bots.yaml" in message


def hook_names() -> list[str]:
    pm = PluginManager()
    return sorted(name for name, caller in vars(pm.hook).items() if getattr(caller, "spec", None))


def test_plugin_hooks_have_tests() -> None:
    tested = set()
    for path in TESTS.rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_hook_"):
                tested.add(node.name.removeprefix("test_hook_"))
    untested = [name for name in hook_names() if name not in tested]
    assert hook_names(), "no hooks found: the check itself is broken"
    assert not untested, f"hooks with no test_hook_<name> under tests/: {untested}"
