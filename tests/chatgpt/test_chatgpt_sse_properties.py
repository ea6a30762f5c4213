"""Properties of the SSE parser: however a stream is cut into reads, the events are the same,
and they match what the stream says, whatever its line endings, BOM and characters."""

from __future__ import annotations

from typing import NamedTuple

from hypothesis import given, settings
from hypothesis import strategies as st

from slashbots.plugins.chatgpt.sse import Event, SSEParser

# Characters that have broken SSE decoders: multibyte UTF-8 (1 to 4 bytes), Unicode line
# separators that str.splitlines honours, a BOM in the middle, colons and spaces.
TRICKY = ["é", "🙂", "世", "\u2028", "\u2029", "\u0085", "\ufeff", ":", " ", "\x0b", "\x1c"]
line_text = st.text(
    alphabet=st.one_of(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
        st.sampled_from(TRICKY),
    ),
    max_size=20,
)
id_text = line_text.filter(lambda text: "\0" not in text)
NEWLINES = ["\n", "\r\n", "\r"]


class Block(NamedTuple):
    """One block of the stream; it yields an event only if it has data lines."""

    event: str | None
    data: list[str]
    id: str | None
    retry: int | None
    comment: str | None


blocks = st.builds(
    Block,
    event=st.none() | line_text,
    data=st.lists(line_text, max_size=4),
    id=st.none() | id_text,
    retry=st.none() | st.integers(0, 10**9),
    comment=st.none() | line_text,
)


def lines_of(block: Block) -> list[str]:
    lines = []
    if block.comment is not None:
        lines.append(":" + block.comment)
    if block.event is not None:
        lines.append("event: " + block.event)
    lines += ["data: " + data for data in block.data]
    if block.id is not None:
        lines.append("id: " + block.id)
    if block.retry is not None:
        lines.append(f"retry: {block.retry}")
    return lines + [""]


def encode(blocks: list[Block], endings: list[str], bom: bool) -> bytes:
    """The stream, each line ended by the next of ``endings`` (cycled)."""
    out = ["\ufeff"] if bom else []
    previous = ""
    index = 0
    for block in blocks:
        for line in lines_of(block):
            ending = endings[index % len(endings)]
            index += 1
            if line == "" and previous == "\r" and ending != "\r":
                # CR then an empty line ended by LF would read as one CRLF: the blank line
                # that ends the block would vanish. Any real writer has the same constraint.
                ending = "\r"
            out += [line, ending]
            previous = ending
    return "".join(out).encode("utf-8")


def expected(blocks: list[Block]) -> list[Event]:
    events = []
    last_id = ""
    for block in blocks:
        if block.id is not None:
            last_id = block.id
        if block.data:
            events.append(Event(block.event or "message", "\n".join(block.data), last_id, block.retry))
    return events


def feed(payload: bytes, cuts: list[int]) -> tuple[list[Event], SSEParser]:
    parser = SSEParser()
    points = [0, *sorted(set(cuts)), len(payload)]
    events = [event for a, b in zip(points, points[1:]) for event in parser.feed(payload[a:b])]
    return events + parser.close(), parser


@settings(max_examples=300, deadline=None)
@given(
    blocks=st.lists(blocks, max_size=6),
    endings=st.one_of(
        st.sampled_from(NEWLINES).map(lambda newline: [newline]),  # one style for the whole stream
        st.lists(st.sampled_from(NEWLINES), min_size=1, max_size=8),  # styles mixed line by line
    ),
    bom=st.booleans(),
    data=st.data(),
)
def test_events_match_the_stream_however_it_is_cut(
    blocks: list[Block], endings: list[str], bom: bool, data: st.DataObject
) -> None:
    payload = encode(blocks, endings, bom)
    cuts = data.draw(st.lists(st.integers(0, len(payload)), max_size=12), label="cuts")
    assert feed(payload, [])[0] == expected(blocks)
    events, parser = feed(payload, cuts)
    assert events == expected(blocks)
    assert not parser.truncated


@settings(max_examples=100, deadline=None)
@given(blocks=st.lists(blocks, min_size=1, max_size=4), newline=st.sampled_from(NEWLINES), bom=st.booleans())
def test_byte_by_byte(blocks: list[Block], newline: str, bom: bool) -> None:
    payload = encode(blocks, [newline], bom)
    assert feed(payload, list(range(len(payload))))[0] == expected(blocks)


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=300), data=st.data())
def test_any_bytes_any_cuts_same_result(payload: bytes, data: st.DataObject) -> None:
    # Even for garbage (invalid UTF-8, stray CRs, partial BOMs), cutting changes nothing.
    cuts = data.draw(st.lists(st.integers(0, len(payload)), max_size=20), label="cuts")
    whole_events, whole = feed(payload, [])
    cut_events, cut = feed(payload, cuts)
    assert cut_events == whole_events
    assert (cut.last_event_id, cut.retry, cut.truncated) == (whole.last_event_id, whole.retry, whole.truncated)


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=200).map(lambda raw: raw.replace(b"\n", b"").replace(b"\r", b"")))
def test_data_bytes_come_through_decoded(payload: bytes) -> None:
    # Any bytes in a data line reach the event as their UTF-8 decoding, invalid bytes as U+FFFD.
    events, _ = feed(b"data: " + payload + b"\n\n", [])
    assert events == [Event("message", payload.decode("utf-8", "replace"))]


@settings(max_examples=100, deadline=None)
@given(blocks=st.lists(blocks, min_size=1, max_size=4), tail=line_text)
def test_unterminated_tail_is_discarded(blocks: list[Block], tail: str) -> None:
    payload = encode(blocks, ["\n"], False) + ("data: " + tail).encode()
    events, parser = feed(payload, [])
    assert events == expected(blocks)
    assert parser.truncated
