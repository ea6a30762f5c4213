"""The SSE parser, case by case (the WHATWG rules and the edge cases other decoders get wrong)."""

from __future__ import annotations

import pytest

from slashbots.plugins.chatgpt.sse import Event, SSEParser


def parse(*chunks: bytes) -> list[Event]:
    parser = SSEParser()
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    return events + parser.close()


def parse_bytewise(payload: bytes) -> list[Event]:
    return parse(*(payload[i : i + 1] for i in range(len(payload))))


def test_one_event() -> None:
    assert parse(b"data: hello\n\n") == [Event("message", "hello")]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(newline: bytes) -> None:
    payload = b"event: a" + newline + b"data: 1" + newline + newline + b"data: 2" + newline + newline
    assert parse(payload) == [Event("a", "1"), Event("message", "2")]
    assert parse_bytewise(payload) == [Event("a", "1"), Event("message", "2")]


def test_mixed_line_endings() -> None:
    assert parse(b"data: a\r\ndata: b\rdata: c\n\r\n") == [Event("message", "a\nb\nc")]


def test_crlf_split_across_reads_is_one_line_end() -> None:
    # Were the LF taken for a second line end, "data: 1" would be dispatched early, then
    # nothing would separate it from "data: 2".
    assert parse(b"data: 1\r", b"\ndata: 2\r", b"\n\r", b"\n") == [Event("message", "1\n2")]


def test_cr_then_cr_is_two_line_ends() -> None:
    assert parse(b"data: 1\r", b"\r") == [Event("message", "1")]


def test_multiline_data_joined_with_lf() -> None:
    assert parse(b"data: one\ndata: two\ndata:\ndata: four\n\n") == [Event("message", "one\ntwo\n\nfour")]


def test_only_one_leading_space_is_stripped() -> None:
    assert parse(b"data:x\n\ndata:  y\n\n") == [Event("message", "x"), Event("message", " y")]


def test_field_without_colon_has_empty_value() -> None:
    assert parse(b"data\n\n") == [Event("message", "")]


def test_comments_are_ignored() -> None:
    assert parse(b": keep-alive\n\n:\ndata: x\n: inside\n\n") == [Event("message", "x")]


def test_block_without_data_dispatches_nothing() -> None:
    assert parse(b"event: ping\n\n") == []
    assert parse(b"event: ping\n\ndata: x\n\n") == [Event("message", "x")]


def test_event_name_resets_after_each_event() -> None:
    assert parse(b"event: delta\ndata: 1\n\ndata: 2\n\n") == [Event("delta", "1"), Event("message", "2")]


def test_id_persists_and_can_be_reset() -> None:
    events = parse(b"id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\n")
    assert [event.id for event in events] == ["7", "7", ""]


def test_id_with_nul_is_ignored() -> None:
    assert parse(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n")[1].id == "1"


def test_retry_takes_ascii_digits_only() -> None:
    parser = SSEParser()
    events = parser.feed(b"retry: 3000\ndata: a\n\nretry: +5\ndata: b\n\nretry: 1\xd9\xa3\ndata: c\n\n")
    assert [event.retry for event in events] == [3000, None, None]
    assert parser.retry == 3000


def test_retry_alone_sets_the_reconnection_time() -> None:
    parser = SSEParser()
    assert parser.feed(b"retry: 250\n\n") == []
    assert parser.retry == 250


def test_unknown_fields_are_ignored() -> None:
    assert parse(b"foo: bar\ndata: x\n\n") == [Event("message", "x")]


def test_leading_bom_is_stripped() -> None:
    assert parse(b"\xef\xbb\xbfdata: x\n\n") == [Event("message", "x")]


def test_bom_split_across_reads_is_stripped() -> None:
    assert parse(b"\xef", b"\xbb", b"\xbfdata: x\n\n") == [Event("message", "x")]
    assert parse_bytewise(b"\xef\xbb\xbfdata: x\n\n") == [Event("message", "x")]


def test_only_the_first_bom_is_stripped() -> None:
    # A second BOM is part of the field name, which is then unknown: the event has no data.
    assert parse(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n") == []


def test_bom_prefix_that_is_not_a_bom() -> None:
    # The held-back byte is not lost: it becomes a line of its own (U+FFFD, an unknown field).
    assert parse(b"\xef", b"\n\ndata: x\n\n") == [Event("message", "x")]
    assert parse(b"\xef", b"\xbb", b"data: x\n\n") == []  # U+FFFD + "data": an unknown field
    assert parse(b"data: \xef", b"\xbb\xbf!\n\n") == [Event("message", "\ufeff!")]


def test_multibyte_utf8_split_across_reads() -> None:
    text = "héllo 🙂 世界"
    payload = f"data: {text}\n\n".encode()
    assert parse_bytewise(payload) == [Event("message", text)]


def test_unicode_line_separators_are_data() -> None:
    text = "a\u2028b\u2029c\u0085d\x0be\x0cf\x1cg"
    assert parse(f"data: {text}\n\n".encode()) == [Event("message", text)]


def test_invalid_utf8_becomes_replacement_character() -> None:
    assert parse(b"data: a\xffb\n\n") == [Event("message", "a\ufffdb")]


def test_unterminated_event_is_discarded_at_eof() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: 1\n\ndata: [DONE]\n") == [Event("message", "1")]
    assert parser.close() == []
    assert parser.truncated


def test_unterminated_line_is_discarded_at_eof() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"choices": [') == []
    assert parser.close() == []
    assert parser.truncated


def test_clean_end_is_not_truncated() -> None:
    parser = SSEParser()
    parser.feed(b"data: x\n\n")
    assert parser.close() == []
    assert not parser.truncated


def test_empty_reads_are_harmless() -> None:
    assert parse(b"", b"data: x", b"", b"\n", b"", b"\n", b"") == [Event("message", "x")]


def test_long_line_in_tiny_reads() -> None:
    data = "x" * 100_000
    payload = f"data: {data}\n\n".encode()
    assert parse(*(payload[i : i + 3] for i in range(0, len(payload), 3))) == [Event("message", data)]


def test_many_events_in_one_read() -> None:
    payload = b"".join(b"data: %d\n\n" % i for i in range(1000))
    assert [event.data for event in parse(payload)] == [str(i) for i in range(1000)]


def test_chat_completions_sample() -> None:
    payload = (
        b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,'
        b'"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
        b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,'
        b'"delta":{"content":"I\'m"},"finish_reason":null}]}\n\n'
        b"data: [DONE]\n\n"
    )
    events = parse_bytewise(payload)
    assert len(events) == 3
    assert events[-1] == Event("message", "[DONE]")
