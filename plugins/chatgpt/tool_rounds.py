"""Answering with tools: ask the model, run the calls it makes, send back the results, until it answers.

Each round is one streamed completion, its text shown as it arrives. When it ends with
tool calls (whatever its ``finish_reason``), the user sees a ``ToolUse`` per call, the
calls run concurrently, each under ``tool_timeout``, and every call gets exactly one result
(the API refuses a conversation with a call left unanswered); then the next round begins.
After ``max_tool_rounds`` rounds of calls, one last completion without tools asks for an
answer from what the model has, and the user is told why it may be incomplete.

A stop or a shutdown cancels the reply's task: the running tools are cancelled with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import Any, AsyncIterator, Mapping

from slashbots import CommandRequest, ToolUse
from slashbots.plugins.chatgpt import wording
from slashbots.plugins.chatgpt.completions import Turn
from slashbots.plugins.chatgpt.openai_api import OpenAIClient
from slashbots.plugins.chatgpt.options import Settings
from slashbots.plugins.chatgpt.tool_calls import ToolCall
from slashbots.tool import Tool, ToolResult, call_tool

log = logging.getLogger("slashbots.chatgpt")

# For the model, in the last round: it may not call tools, and must not pretend it did.
NO_MORE_TOOLS = (
    "You can't call tools any more for this question. Answer now with what you have found so far, "
    "and say plainly what you could not find out."
)


async def answer(api: OpenAIClient, settings: Settings, request: CommandRequest,
                 messages: list[dict[str, Any]]) -> AsyncIterator[str | ToolUse]:
    """The model's answer to ``messages`` (extended in place), offering it ``request.tools``."""
    offered = [definition(tool) for tool in request.tools]
    usage: Counter[str] = Counter()
    rounds = completions = 0
    while True:
        last = bool(offered) and rounds >= settings.max_tool_rounds
        if last:
            messages.append({"role": "system", "content": NO_MORE_TOOLS})
        text: list[str] = []
        turn = Turn([])
        async with contextlib.aclosing(api.stream_chat(messages, None if last else offered)) as completion:
            async for item in completion:
                if isinstance(item, Turn):
                    turn = item
                else:
                    text.append(item)
                    yield item
        completions += 1
        _add_usage(usage, turn.usage)
        if last or not offered or not turn.tool_calls:
            break
        rounds += 1
        for call in turn.tool_calls:
            yield ToolUse(call.name, call.arguments, show=settings.show_tool_calls)
        results = await _run(turn.tool_calls, request, settings.tool_timeout)
        messages.append({
            "role": "assistant",
            "content": "".join(text) or None,
            "tool_calls": [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
                for call in turn.tool_calls
            ],
        })
        messages += [
            {"role": "tool", "tool_call_id": call.id, "content": result.output}
            for call, result in zip(turn.tool_calls, results)
        ]
    log.debug("/%s: %d completion(s), %d round(s) of tool calls, usage %s",
              request.command, completions, rounds, dict(usage) or "not reported")
    if last:
        yield wording.out_of_tool_rounds(rounds)


def definition(tool: Tool) -> dict[str, Any]:
    """A tool as Chat Completions' ``tools`` list takes it."""
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": dict(tool.parameters)},
    }


async def _run(calls: list[ToolCall], request: CommandRequest, timeout: float) -> list[ToolResult]:
    """Every call at once, results in call order. A cancelled reply cancels them all (the task group's doing)."""
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(call_tool(request.tools, call.name, call.arguments, request, timeout=timeout))
            for call in calls
        ]
    return [task.result() for task in tasks]


def _add_usage(total: Counter[str], usage: Mapping[str, Any] | None) -> None:
    """Token counts add up over the rounds of one answer."""
    for key, value in (usage or {}).items():
        if isinstance(value, int) and not isinstance(value, bool):
            total[key] += value
