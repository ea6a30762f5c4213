"""A post that timed out but landed is not posted again on retry: the relay picks each message's id."""

from __future__ import annotations

from typing import Any

import pytest

from slashbots.relay import Relay
from slashbots.stream import StreamError


class LateStream:
    """Keeps every post, but answers the first as if it had timed out; like Stream, it refuses a
    second message with an id it already has."""

    def __init__(self) -> None:
        self.messages: dict[str, dict[str, Any]] = {}
        self.posts = 0

    async def send_message(self, cid: str, user_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        self.posts += 1
        if fields["id"] in self.messages:
            raise StreamError(f"send a message: Stream answered 400: a message with ID {fields['id']} already exists",
                              status=400)
        self.messages[fields["id"]] = dict(fields)
        if self.posts == 1:
            raise StreamError("send a message: could not reach Stream (TimeoutError)")
        return dict(fields)

    async def update_message(self, message_id: str, user_id: str, fields: dict[str, Any]) -> None:
        self.messages[message_id].update(fields)

    async def send_event(self, cid: str, user_id: str, event: dict[str, Any]) -> None:
        pass


@pytest.mark.parametrize("streaming", [True, False])
async def test_a_post_that_timed_out_but_landed_is_not_posted_twice(streaming: bool) -> None:
    stream = LateStream()
    relay = Relay(stream, "messaging:general", "bot", streaming=streaming, interval=0.05, settle=0)  # type: ignore[arg-type]
    relay.open()
    relay.append("the answer")
    await relay.close()
    assert [(m["text"], m["generating"]) for m in stream.messages.values()] == [("the answer", False)]
    assert stream.posts == 2
