"""The record of everything the stand-in was asked and did, for tests and benchmarks to read."""

from __future__ import annotations

import threading

from slashbots.sandbox.standin.values import Json

# Which recorded operations count as writes of a kind, for `writes(kind)`.
WRITE_KINDS = {
    "UpdateApp": "app", "CreateCommand": "command", "UpdateCommand": "command", "DeleteCommand": "command",
    "CreateChannelType": "channel_type", "UpdateChannelType": "channel_type", "UpdateUsers": "user",
    "SendMessage": "message", "UpdateMessage": "message", "UpdateMessagePartial": "message", "DeleteMessage": "message",
    "SendEvent": "event", "UpdateChannel": "channel",
}


class Recorder:
    """Logs appended to under `lock`; readers copy them under the same lock."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self.calls: list[Json] = []
        self.hook_calls: list[Json] = []
        self.event_hook_calls: list[Json] = []

    def call(self, record: Json) -> None:
        """One API request served: {method, path, query, json, status, operation, at}."""
        with self._lock:
            self.calls.append(record)

    def hook_call(self, record: Json) -> None:
        """One custom-command webhook call: what was sent, what came back, status, elapsed, outcome."""
        with self._lock:
            self.hook_calls.append(record)

    def event_hook_call(self, record: Json) -> None:
        """One event sent (or to be sent) to one event hook; `settle` records how it went."""
        with self._lock:
            self.event_hook_calls.append(record)

    def settle(self, record: Json, **fields: object) -> None:
        """Record what became of a delivery: its attempts so far, its outcome."""
        with self._lock:
            record.update(fields)

    def writes(self, kind: str) -> list[Json]:
        """Successful write calls of a kind (see WRITE_KINDS); call under the lock."""
        return [c for c in self.calls if c["status"] < 400 and WRITE_KINDS.get(c["operation"]) == kind]
