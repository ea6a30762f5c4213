"""How the chat shows a tool call, ``🔧 roll_dice(sides=6)``, and how to take such lines out again.

The lines are part of the bot's message text (so they count toward Stream's length limit
like any text), one per call, where the call happened. Providers that rebuild a
conversation from the channel leave them out with ``without_tool_lines``: they record what
the bot did, not what it said.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from slashbots.provider import ToolUse

ARGUMENTS_LIMIT = 80  # characters of arguments shown; a line is a glance, not a log
# What could format, link or embed mid-line: the arguments are the model's words, and must
# not turn into an image or a link in the chat. (What only matters at the start of a line,
# such as "#" or "1.", cannot: the line starts with the emoji.) An "_" between letters or
# digits never emphasises, so roll_dice stays as it is.
_MARKDOWN = re.compile(r"([\\`*\[\]<>~|&]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
_TOOL_LINE = re.compile(r"^🔧 \S.*\)[ \t]*$\n?", re.MULTILINE)


def tool_line(use: ToolUse) -> str:
    """``🔧 name(arguments)``, the arguments cut to ``ARGUMENTS_LIMIT`` characters and escaped.

    The name is escaped too: a model may call a tool that does not exist, under any name.
    """
    name = "".join(use.name.split())[:64] or "?"
    shown = " ".join(_arguments(use.arguments).split())  # one line, whatever the model sent
    if len(shown) > ARGUMENTS_LIMIT:
        shown = shown[: ARGUMENTS_LIMIT - 1] + "…"
    return f"🔧 {_escaped(name)}({_escaped(shown)})"


def without_tool_lines(text: str) -> str:
    """``text`` without the lines ``tool_line`` made, and without the blank lines they leave."""
    if "🔧" not in text:
        return text
    return re.sub(r"\n{3,}", "\n\n", _TOOL_LINE.sub("", text)).strip()


def _escaped(text: str) -> str:
    return _MARKDOWN.sub(r"\\\1", text)


def _arguments(arguments: Mapping[str, Any] | str) -> str:
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return arguments  # not JSON: shown as the model sent it
        if not isinstance(parsed, dict):
            return arguments
        arguments = parsed
    return ", ".join(f"{name}={json.dumps(value, ensure_ascii=False)}" for name, value in arguments.items())
