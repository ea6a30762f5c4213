"""docs/plugins.md must not drift from the code: every hook, every request field, tools, the tutorials' files.

Modelled on datasette's tests/test_docs.py: a hook without its reference section fails here.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from slashbots.plugin_manager import PluginManager, plugin_manager
from slashbots.provider import ChatMessage, CommandRequest, ToolUse
from slashbots.tool import Tool
from slashbots.tools import tools

REPO = Path(__file__).resolve().parents[1]
DOCS = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    """The text under the heading ``title``, up to the next heading of its level or higher.

    Lines in code blocks are never headings (a YAML or shell comment starts with ``#`` too).
    """
    level, body, in_code = 0, [], False
    for line in DOCS.splitlines(keepends=True):
        if line.lstrip().startswith("```"):
            in_code = not in_code
        heading = None if in_code else re.match(r"(#+) (.*)", line)
        if not level:
            level = len(heading.group(1)) if heading and heading.group(2).strip() == title else 0
        elif heading and len(heading.group(1)) <= level:
            break
        else:
            body.append(line)
    assert level, f"docs/plugins.md has no heading {title!r}"
    return "".join(body)


def hooks() -> dict[str, tuple[str, ...]]:
    """Every hook in core/hookspecs.py, with its argument names."""
    return {name: caller.spec.argnames for name, caller in vars(PluginManager().hook).items() if caller.spec}


def documented_names(title: str) -> set[str]:
    """The names in the first column of the table under ``title``: rows like "| `cid` | ..."."""
    return set(re.findall(r"^\| `(\w+)` \|", section(title), re.MULTILINE))


def public_fields(cls: type) -> list[str]:
    fields = [field.name for field in dataclasses.fields(cls) if not field.name.startswith("_")]
    properties = [name for name, value in vars(cls).items() if isinstance(value, property)]
    return fields + properties


@pytest.mark.parametrize(("hook", "args"), sorted(hooks().items()))
def test_every_hook_has_a_reference_section_with_its_exact_arguments(hook: str, args: tuple[str, ...]) -> None:
    heading = f"### {hook}({', '.join(args)})"
    assert re.search(rf"^{re.escape(heading)}$", section("Hook reference"), re.MULTILINE), (
        f"docs/plugins.md: the Hook reference needs a section headed {heading!r}"
    )


def test_the_hook_reference_has_no_section_for_a_hook_that_does_not_exist() -> None:
    headings = re.findall(r"^### (\w+)\(", section("Hook reference"), re.MULTILINE)
    assert headings, "the Hook reference has no hook sections"
    assert set(headings) <= set(hooks()), f"no such hooks: {sorted(set(headings) - set(hooks()))}"


@pytest.mark.parametrize("field", public_fields(CommandRequest))
def test_every_command_request_field_is_documented(field: str) -> None:
    assert field in documented_names("CommandRequest"), f"docs/plugins.md: the CommandRequest table lacks `{field}`"


def test_command_request_methods_are_documented_with_their_arguments() -> None:
    for name, method in vars(CommandRequest).items():
        if inspect.iscoroutinefunction(method) and not name.startswith("_"):
            parameters = [p for p in inspect.signature(method).parameters.values() if p.name != "self"]
            call = f"{name}({', '.join(f'{p.name}={p.default}' for p in parameters)})"
            assert f"`await request.{call}`" in section("CommandRequest"), f"document `await request.{call}`"


@pytest.mark.parametrize("field", public_fields(ChatMessage))
def test_every_chat_message_field_is_documented(field: str) -> None:
    assert field in documented_names("ChatMessage"), f"docs/plugins.md: the ChatMessage table lacks `{field}`"


@pytest.mark.parametrize("field", public_fields(ToolUse))
def test_every_tool_use_field_is_documented(field: str) -> None:
    assert field in documented_names("ToolUse"), f"docs/plugins.md: the ToolUse table lacks `{field}`"


@pytest.mark.parametrize("field", public_fields(Tool))
def test_every_tool_field_is_documented(field: str) -> None:
    assert field in documented_names("Tool"), f"docs/plugins.md: the Tool table lacks `{field}`"


def test_every_built_in_tool_is_documented() -> None:
    built_in = {tool.name for tool in tools(plugin_manager(entry_points=False)).values()
                if tool.plugin == "slashbots.plugins.tools"}
    assert built_in and documented_names("Built-in tools") == built_in


def test_the_tool_tutorials_code_is_the_example_packages() -> None:
    example = "".join(path.read_text(encoding="utf-8") for path in (REPO / "examples" / "slashbots-dice").rglob("*.py"))
    blocks = re.findall(r"^```python\n(.*?)^```$", section("Tutorial: a tool"), re.MULTILINE | re.DOTALL)
    assert blocks, "the tool tutorial shows no Python"
    for block in blocks:
        assert block in example, f"docs/plugins.md's tool tutorial shows code that the example lacks:\n{block}"


def test_the_tutorial_shows_the_example_package_file_for_file() -> None:
    shown = re.findall(r"^<!-- file: (\S+) -->\n```\w*\n(.*?)^```$", DOCS, re.MULTILINE | re.DOTALL)
    assert {path for path, _ in shown} >= {
        "examples/slashbots-dice/slashbots_dice.py",
        "examples/slashbots-dice/pyproject.toml",
        "examples/slashbots-dice/tests/test_dice.py",
    }
    for path, text in shown:
        assert text == (REPO / path).read_text(encoding="utf-8"), f"docs/plugins.md shows an outdated {path}"


def test_the_sandbox_endpoints_the_tutorial_shows_exist() -> None:
    from slashbots.sandbox.chat_api import chat_routes

    shown = set(re.findall(r"(/sandbox/api/\w+)", section("5. Try it in the sandbox")))
    served = {route.path for route in chat_routes(None, "http://127.0.0.1:1")}  # type: ignore[arg-type]
    assert shown and shown <= served, f"the tutorial shows endpoints the sandbox does not serve: {shown - served}"


def test_command_request_plain_methods_are_documented_with_their_arguments() -> None:
    for name, method in vars(CommandRequest).items():
        if inspect.isfunction(method) and not inspect.iscoroutinefunction(method) and not name.startswith("_"):
            parameters = [p.replace(annotation=inspect.Parameter.empty) for p in
                          inspect.signature(method).parameters.values() if p.name != "self"]
            shown = f"{name}{inspect.Signature(parameters)}"
            assert f"`request.{shown}`" in section("CommandRequest"), f"document `request.{shown}`"


@pytest.mark.parametrize("attribute", ["supports_tools", "default_rate_limit", "tokens_per_answer"])
def test_what_a_provider_may_declare_is_documented(attribute: str) -> None:
    assert f"**`{attribute}`**" in section("Providers") or f"`{attribute} = True`" in section("Providers"), attribute
