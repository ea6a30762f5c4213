"""The Chat Completions stream, one SSE event at a time: text out, and how the stream ended.

Pure and synchronous, so every quirk is testable without a network:

- ``data: [DONE]`` ends the stream; it is matched as a prefix of the raw data, before
  any JSON parsing, as OpenAI's own client does.
- ``{"error": {...}}`` may arrive after HTTP 200 (OpenAI, vLLM, llama.cpp), as may an
  event named ``error``; either raises ``StreamErrorEvent``.
- Chunks with an empty ``choices`` list carry usage (``stream_options.include_usage``) or
  Azure's content-filter annotations; they carry no text.
- ``finish_reason`` says how the answer ended. A stream that stops with neither
  ``[DONE]`` nor a ``finish_reason`` was cut off: ``complete`` stays false.
- ``delta.tool_calls`` fragments are gathered in ``tool_calls`` (see ``tool_calls``),
  whatever ``finish_reason`` says: OpenAI itself says ``stop`` after a call it was told to make.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Mapping

from slashbots.plugins.chatgpt.sse import Event
from slashbots.plugins.chatgpt.tool_calls import ToolCall, ToolCallAccumulator

log = logging.getLogger("slashbots.chatgpt")


class StreamErrorEvent(Exception):
    """The server reported an error inside a 200 stream; ``error`` is its error object."""

    def __init__(self, error: Mapping[str, Any]) -> None:
        super().__init__(str(error.get("message") or "error event in the stream"))
        self.error = error


@dataclass(frozen=True)
class Turn:
    """How one completion ended, after its text: the tool calls it asked for and the tokens it used."""

    tool_calls: list[ToolCall]
    usage: Mapping[str, Any] | None = None


class CompletionStream:
    """Reads the events of one streamed chat completion (the first choice only)."""

    def __init__(self) -> None:
        self.done = False  # saw [DONE]
        self.finish_reason: str | None = None
        self.usage: Mapping[str, Any] | None = None
        self.tool_calls = ToolCallAccumulator()

    @property
    def complete(self) -> bool:
        """Whether the answer ended properly. Some servers omit [DONE]; a finish_reason is enough."""
        return self.done or self.finish_reason is not None

    def read(self, event: Event) -> str:
        """The text this event adds to the answer ("" for none); raises ``StreamErrorEvent``."""
        if event.data.startswith("[DONE]"):
            self.done = True
            return ""
        try:
            chunk = json.loads(event.data)
        except ValueError:
            # Keep-alives and other non-JSON noise carry no answer; say so in the log only.
            log.debug("ignoring a non-JSON stream event: %.80r", event.data)
            return ""
        if not isinstance(chunk, dict):
            log.debug("ignoring a stream event that is not a JSON object: %.80r", event.data)
            return ""
        if chunk.get("error") or event.event == "error":
            error = chunk.get("error") or chunk
            raise StreamErrorEvent(error if isinstance(error, dict) else {"message": str(error)})
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        choices = chunk.get("choices")
        if not choices or not isinstance(choices, list):
            return ""  # a usage chunk, or one of Azure's filter annotations
        choice = choices[0]
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            return ""
        if choice.get("finish_reason"):
            self.finish_reason = str(choice["finish_reason"])
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            return ""
        self.tool_calls.add(delta.get("tool_calls"))
        # ``refusal`` is the model declining in its own words: show it like any text.
        text = delta.get("content") or delta.get("refusal") or ""
        return text if isinstance(text, str) else ""
