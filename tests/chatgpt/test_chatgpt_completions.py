"""The Chat Completions layer: SSE events in, text and the stream's ending out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from slashbots.plugins.chatgpt.completions import CompletionStream, StreamErrorEvent
from slashbots.plugins.chatgpt.sse import Event, SSEParser
from tests.support.openai_standin import Stream, chunk, stream_bytes


def event(payload: Any, name: str = "message") -> Event:
    return Event(name, payload if isinstance(payload, str) else json.dumps(payload))


def read_all(payload: bytes) -> tuple[str, CompletionStream]:
    stream = CompletionStream()
    parser = SSEParser()
    text = ""
    for item in parser.feed(payload) + parser.close():
        text += stream.read(item)
        if stream.done:
            break
    return text, stream


def test_recorded_shape_stream() -> None:
    text, stream = read_all(stream_bytes(Stream(["I'm", " here", " 🙂"])))
    assert text == "I'm here 🙂"
    assert stream.done and stream.complete
    assert stream.finish_reason == "stop"
    assert stream.usage == {"prompt_tokens": 14, "completion_tokens": 3, "total_tokens": 17}


@pytest.mark.parametrize("data", ["[DONE]", "[DONE] ", "[DONE]\n"])
def test_done_is_a_prefix_match_on_raw_data(data: str) -> None:
    stream = CompletionStream()
    assert stream.read(event(data)) == ""
    assert stream.done


def test_usage_chunk_with_empty_choices_has_no_text() -> None:
    stream = CompletionStream()
    assert stream.read(event(chunk("m", usage={"total_tokens": 3}))) == ""
    assert stream.usage == {"total_tokens": 3}
    assert not stream.complete


def test_azure_filter_annotation_chunks_are_skipped() -> None:
    stream = CompletionStream()
    annotation = {"choices": [], "created": 0, "id": "", "model": "", "object": "",
                  "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}
    assert stream.read(event(annotation)) == ""
    with_results = {"choices": [{"index": 0, "finish_reason": None,
                                 "content_filter_results": {"hate": {"filtered": False}}}]}
    assert stream.read(event(with_results)) == ""


def test_finish_reason_without_done_is_complete() -> None:
    stream = CompletionStream()
    stream.read(event(chunk("m", delta={"content": "hi"})))
    assert not stream.complete
    stream.read(event(chunk("m", delta={}, finish_reason="length")))
    assert stream.complete and not stream.done
    assert stream.finish_reason == "length"


def test_error_event_after_200() -> None:
    stream = CompletionStream()
    with pytest.raises(StreamErrorEvent) as caught:
        stream.read(event({"error": {"message": "The server had an error", "type": "server_error",
                                     "param": None, "code": None}}))
    assert caught.value.error["type"] == "server_error"


def test_error_event_with_integer_code_from_vllm() -> None:
    with pytest.raises(StreamErrorEvent) as caught:
        CompletionStream().read(event({"error": {"message": "bad", "type": "BadRequestError",
                                                 "param": None, "code": 400}}))
    assert caught.value.error["code"] == 400


def test_event_named_error() -> None:
    with pytest.raises(StreamErrorEvent) as caught:
        CompletionStream().read(event({"message": "overloaded", "type": "server_error"}, name="error"))
    assert caught.value.error["message"] == "overloaded"


def test_non_json_events_are_ignored() -> None:
    stream = CompletionStream()
    assert stream.read(event("ping")) == ""
    assert stream.read(event("[1, 2]")) == ""


def test_other_choices_and_odd_deltas_are_ignored() -> None:
    stream = CompletionStream()
    second = {"choices": [{"index": 1, "delta": {"content": "other"}}]}
    assert stream.read(event(second)) == ""
    assert stream.read(event({"choices": [{"index": 0, "delta": {"content": None}}]})) == ""
    assert stream.read(event({"choices": [{"index": 0, "delta": {"reasoning_content": "hmm"}}]})) == ""
    assert stream.read(event({"choices": [{"index": 0}]})) == ""


def test_refusal_delta_is_shown() -> None:
    stream = CompletionStream()
    assert stream.read(event({"choices": [{"index": 0, "delta": {"refusal": "I can't help with that."}}]})) == (
        "I can't help with that."
    )


def test_stream_cut_off_is_not_complete() -> None:
    text, stream = read_all(stream_bytes(Stream(["partial"], finish_reason=None, usage=False, done=False)))
    assert text == "partial"
    assert not stream.complete
