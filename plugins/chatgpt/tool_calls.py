"""Tool calls as the Chat Completions stream delivers them: fragments, put back together.

OpenAI sends a call's ``id`` and name in its first fragment and its ``arguments`` (JSON
text) in pieces cut anywhere, all keyed by ``index``. Compatible servers differ, so the
accumulator is tolerant (shared/reference/tools-and-conversations.md, 2.2):

- A call may arrive whole in one fragment (Ollama), its arguments even as an object.
- Several calls may share ``index`` 0 (Ollama, proxies): a fragment with another ``id``,
  or with a name once the call it would extend already holds complete JSON, starts a new call.
- ``id`` and name may be repeated on every fragment (LiteLLM, DeepSeek): the first value
  wins, and only ``arguments`` is joined. ``index`` may be missing: the fragment's
  position in its list stands in. A call without an ``id`` gets one made up, since every
  result sent back must name its call.
- No arguments at all mean ``{}``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolCall:
    """One call the model asked for: ``arguments`` is JSON text, as it must be sent back."""

    id: str
    name: str
    arguments: str


@dataclass
class _Slot:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def complete(self) -> bool:
        """Whether the arguments so far are a whole JSON value (so a new name can't extend them)."""
        try:
            json.loads("".join(self.arguments))
        except ValueError:
            return False
        return True


class ToolCallAccumulator:
    """Feed it each delta's ``tool_calls``; ``calls()`` gives the calls, in the order they began."""

    def __init__(self) -> None:
        self._slots: list[_Slot] = []
        self._open: dict[int, _Slot] = {}  # index -> the latest call at that index

    def __bool__(self) -> bool:
        return bool(self._slots)

    def add(self, fragments: Any) -> None:
        if not isinstance(fragments, list):
            return
        for position, fragment in enumerate(fragments):
            if isinstance(fragment, dict):
                self._add(fragment, position)

    def _add(self, fragment: dict[str, Any], position: int) -> None:
        index = fragment.get("index")
        index = index if isinstance(index, int) and not isinstance(index, bool) else position
        function = fragment.get("function") if isinstance(fragment.get("function"), dict) else {}
        call_id = fragment.get("id") if isinstance(fragment.get("id"), str) else ""
        name = function.get("name") if isinstance(function.get("name"), str) else ""
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            arguments = json.dumps(arguments)  # sent as an object: it is whole

        slot = self._open.get(index)
        if _starts_a_call(slot, call_id, name):
            slot = self._open[index] = _Slot()
            self._slots.append(slot)
        slot.id = slot.id or call_id
        slot.name = slot.name or name
        if arguments:
            slot.arguments.append(arguments)

    def calls(self) -> list[ToolCall]:
        return [
            ToolCall(slot.id or f"call_{uuid.uuid4().hex[:24]}", slot.name, "".join(slot.arguments).strip() or "{}")
            for slot in self._slots
        ]


def _starts_a_call(slot: _Slot | None, call_id: str, name: str) -> bool:
    """Whether a fragment begins a new call rather than continuing ``slot``, the latest at its index."""
    if slot is None:
        return True
    if call_id and slot.id:
        return call_id != slot.id
    return bool(name and slot.name and slot.complete())
