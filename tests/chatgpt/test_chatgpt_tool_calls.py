"""Streamed tool calls put back together, from the wire format up: however the server cuts, repeats or
numbers the fragments, the calls come out whole and in order."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slashbots.plugins.chatgpt.completions import CompletionStream
from slashbots.plugins.chatgpt.sse import SSEParser
from slashbots.plugins.chatgpt.tool_calls import ToolCall, ToolCallAccumulator
from tests.support.openai_standin import Call, Stream, awkward_pieces, stream_bytes, tool_stream


def read(payload: bytes, reads: list[bytes] | None = None) -> tuple[str, CompletionStream]:
    """Text and the finished stream, with ``payload`` fed in ``reads`` (default: in one go)."""
    stream, parser, text = CompletionStream(), SSEParser(), ""
    for piece in reads if reads is not None else [payload]:
        for event in parser.feed(piece):
            text += stream.read(event)
    return text, stream


def calls_of(reply: Stream) -> list[ToolCall]:
    return read(stream_bytes(reply))[1].tool_calls.calls()


WEATHER = Call("weather", '{"city": "Paris", "units": "metric"}', id="call_abc")
TIME = Call("current_time", '{"zone": "Europe/Paris"}', id="call_def")


def test_openais_shape_first_fragment_then_arguments_in_pieces() -> None:
    assert calls_of(tool_stream(WEATHER, TIME, fragment=3)) == [
        ToolCall("call_abc", "weather", '{"city": "Paris", "units": "metric"}'),
        ToolCall("call_def", "current_time", '{"zone": "Europe/Paris"}'),
    ]


def test_text_before_the_calls_is_text() -> None:
    text, stream = read(stream_bytes(Stream(["Let me ", "check."], tool_calls=[TIME], finish_reason="tool_calls")))
    assert text == "Let me check."
    assert [call.name for call in stream.tool_calls.calls()] == ["current_time"]


@pytest.mark.parametrize("finish_reason", ["tool_calls", "stop", None])
def test_calls_count_whatever_the_finish_reason_says(finish_reason: str | None) -> None:
    # OpenAI answers "stop" after a call it was told to make (a named tool_choice).
    _, stream = read(stream_bytes(tool_stream(TIME, finish_reason=finish_reason)))
    assert [call.name for call in stream.tool_calls.calls()] == ["current_time"]
    assert stream.complete  # [DONE] is enough


@pytest.mark.parametrize(
    "quirks",
    [
        {"whole": True},  # Ollama: each call in one chunk
        {"whole": True, "reuse_index": True},  # Ollama: and every call at index 0
        {"whole": True, "reuse_index": True, "omit_ids": True},  # and no ids at all
        {"reuse_index": True},  # fragments at index 0, told apart by their ids
        {"repeat_ids": True},  # LiteLLM, DeepSeek: id and name on every fragment
        {"repeat_ids": True, "reuse_index": True},
        {"omit_ids": True},  # ids are optional in the chunk schema
        {"omit_ids": True, "reuse_index": True},  # a new name after complete arguments starts a call
    ],
)
def test_compatible_servers_quirks(quirks: dict[str, bool]) -> None:
    calls = calls_of(tool_stream(WEATHER, TIME, **quirks))
    assert [(call.name, json.loads(call.arguments)) for call in calls] == [
        ("weather", {"city": "Paris", "units": "metric"}),
        ("current_time", {"zone": "Europe/Paris"}),
    ]
    if quirks.get("omit_ids"):
        first, second = (call.id for call in calls)
        assert first.startswith("call_") and second.startswith("call_") and first != second  # made up, unique
    else:
        assert [call.id for call in calls] == ["call_abc", "call_def"]


def test_no_arguments_at_all_mean_an_empty_object() -> None:
    accumulator = ToolCallAccumulator()
    accumulator.add([{"index": 0, "id": "a", "function": {"name": "now", "arguments": None}}])
    accumulator.add([{"index": 1, "id": "b", "function": {"name": "later"}}])
    accumulator.add([{"index": 2, "id": "c", "function": {"name": "then", "arguments": ""}}])
    assert [call.arguments for call in accumulator.calls()] == ["{}", "{}", "{}"]


def test_arguments_sent_as_an_object_are_json_text() -> None:
    accumulator = ToolCallAccumulator()
    accumulator.add([{"id": "a", "function": {"name": "weather", "arguments": {"city": "Oslo"}}}])  # no index either
    assert accumulator.calls() == [ToolCall("a", "weather", '{"city": "Oslo"}')]


def test_junk_is_ignored() -> None:
    accumulator = ToolCallAccumulator()
    accumulator.add("not a list")
    accumulator.add([7, None, {"index": "x", "function": "nope"}])
    assert [(call.name, call.arguments) for call in accumulator.calls()] == [("", "{}")]  # the dict makes a call


# -- cut anywhere: a property -------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
arguments = st.dictionaries(st.text(max_size=8), json_values, max_size=4).map(
    lambda value: json.dumps(value, ensure_ascii=False))
names = st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True)


@st.composite
def calls(draw: st.DrawFn) -> list[Call]:
    made = []
    for number in range(draw(st.integers(1, 3))):
        text = draw(arguments)
        cuts = draw(st.lists(st.integers(0, max(len(text), 1)), max_size=12))
        made.append(Call(draw(names), text, id=f"call_{number}", cuts=cuts))
    return made


@settings(max_examples=150, deadline=None)
@given(
    made=calls(),
    quirks=st.sampled_from([{}, {"reuse_index": True}, {"repeat_ids": True}, {"omit_ids": True}, {"whole": True},
                            {"reuse_index": True, "omit_ids": True},
                            {"whole": True, "reuse_index": True, "omit_ids": True}]),
    every=st.integers(1, 40),
)
def test_fragments_cut_anywhere_and_read_in_any_sizes_make_the_same_calls(
        made: list[Call], quirks: dict[str, bool], every: int) -> None:
    payload = stream_bytes(tool_stream(*made, **quirks))
    _, stream = read(payload, awkward_pieces(payload, every))
    got = stream.tool_calls.calls()
    assert [(call.name, json.loads(call.arguments)) for call in got] == [
        (call.name, json.loads(call.arguments)) for call in made
    ]
    if not quirks.get("omit_ids"):
        assert [call.id for call in got] == [call.id for call in made]
