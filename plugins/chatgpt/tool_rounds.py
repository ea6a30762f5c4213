"""Answering with tools: ask the model, run the calls it makes, send back the results, until it answers.

Each round is one streamed completion, its text shown as it arrives. When it ends with
tool calls (whatever its ``finish_reason``), the user sees a ``ToolUse`` per call, the
calls run concurrently, each under ``tool_timeout``, and every call gets exactly one result
(the API refuses a conversation with a call left unanswered); then the next round begins.
After ``max_tool_rounds`` rounds of calls, one last completion without tools asks for an
answer from what the model has, and the user is told why it may be incomplete.

A stop or a shutdown cancels the reply's task: the running tools are cancelled with it.
Each completion's tokens are reported (``request.report_usage``) as it ends, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
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
from slashbots.usage import estimate_tokens

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
        ended: Turn | None = None
        tools = None if last else offered
        try:
            async with contextlib.aclosing(api.stream_chat(messages, tools)) as completion:
                async for item in completion:
                    if isinstance(item, Turn):
                        ended = item
                    else:
                        text.append(item)
                        yield item
        finally:
            # Even when the answer is stopped or fails part-way: what was written was paid for.
            report_usage(request, messages, tools, text, ended)
        turn = ended or Turn([])
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


def report_usage(request: CommandRequest, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                 text: list[str], turn: Turn | None) -> None:
    """One completion's tokens, as the server counted them; estimated when it sent no count.

    The estimate (``estimate_tokens``: four characters a token) takes the request as sent
    (messages and tools, as JSON) for the prompt, and the text and tool calls that came back
    for the completion. A completion that failed before any of its text arrived is not
    counted: the server's bill for it, if any, cannot be seen from here.
    """
    usage = turn.usage if turn is not None else None
    prompt = usage.get("prompt_tokens") if usage else None
    completion = usage.get("completion_tokens") if usage else None
    if _count(prompt) or _count(completion):
        request.report_usage(prompt_tokens=prompt if _count(prompt) else 0,
                             completion_tokens=completion if _count(completion) else 0)
        return
    calls = turn.tool_calls if turn is not None else []
    if not text and not calls:
        return
    sent = json.dumps({"messages": messages, "tools": tools or []}, ensure_ascii=False)
    written = "".join(text) + "".join(call.name + call.arguments for call in calls)
    request.report_usage(prompt_tokens=estimate_tokens(sent), completion_tokens=estimate_tokens(written), estimated=True)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _add_usage(total: Counter[str], usage: Mapping[str, Any] | None) -> None:
    """Token counts add up over the rounds of one answer."""
    for key, value in (usage or {}).items():
        if isinstance(value, int) and not isinstance(value, bool):
            total[key] += value
