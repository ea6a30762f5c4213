"""Server-sent events: an incremental parser that turns bytes into events.

It follows the WHATWG "event stream interpretation" rules
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):

- Lines end in CR, LF or CRLF, and a CRLF may be split across two reads.
- Lines are split on bytes and decoded afterwards. That keeps a multibyte UTF-8 character
  that is split across reads intact, and it never splits on U+2028, U+0085 and the other
  characters that ``str.splitlines`` treats as line ends. Invalid UTF-8 becomes U+FFFD.
- One leading byte-order mark is stripped, even when it arrives a byte at a time.
- ``data:`` lines are joined with LF; lines starting with ``:`` are comments; ``event:``,
  ``id:`` (ignored if it contains NUL; it persists across events) and ``retry:`` (ASCII
  digits only) are honoured; unknown fields are ignored.
- A blank line dispatches the event if any ``data:`` line was seen; a block without data
  (for example ``event: ping`` alone) dispatches nothing, as the spec says.
- At end of input an event that lacks its closing blank line is discarded, as the spec
  says: a stream cut off mid-event may have cut the data too. ``close()`` therefore returns
  no events; it reports through ``truncated`` whether something was discarded, so callers
  can log it. Chat Completions callers decide completeness from ``[DONE]`` and
  ``finish_reason``, never from this parser.

Speed: each read is normalised and split with a few C-level bytes operations, and only
the unfinished last line is carried over, in a bytearray that grows in amortised constant
time, so a long event delivered in many small reads costs linear, not quadratic, time.
"""

from __future__ import annotations

from typing import NamedTuple

_BOM = b"\xef\xbb\xbf"


class Event(NamedTuple):
    """One dispatched event. ``id`` is the last event ID seen so far in the stream."""

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None


class SSEParser:
    """Feed it the bytes of one stream as they arrive; it returns the events they complete."""

    def __init__(self) -> None:
        self._partial = bytearray()  # the last line of the input so far, not yet ended
        self._skip_lf = False  # the previous read ended in CR: a leading LF completes a CRLF
        self._bom_checked = False
        self._data: list[str] = []
        self._event = ""
        self._retry: int | None = None
        self.last_event_id = ""
        self.retry: int | None = None  # the latest reconnection time the server asked for, in ms
        self.truncated = False

    def feed(self, chunk: bytes) -> list[Event]:
        """Parse one read; return the events it completed, oldest first."""
        if not self._bom_checked:
            chunk = self._strip_bom(chunk)
            if not chunk:
                return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\r" in chunk:
            # A CR at the very end may be the first half of a CRLF; as a line end it is
            # already complete, so end the line now and drop a LF that starts the next read.
            self._skip_lf = chunk[-1:] == b"\r"
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = chunk.rfind(b"\n")
        if end < 0:
            self._partial += chunk
            return []
        if self._partial:
            self._partial += chunk[:end]
            text = self._partial.decode("utf-8", "replace")
            self._partial = bytearray(chunk[end + 1 :])
        else:
            # LF never occurs inside a multibyte UTF-8 sequence, so everything up to the
            # last LF decodes on its own.
            text = chunk[:end].decode("utf-8", "replace")
            self._partial += chunk[end + 1 :]
        return self._lines(text.split("\n"))

    def close(self) -> list[Event]:
        """End of input: discard an unfinished event (see the module docstring)."""
        self.truncated = bool(self._partial or self._data)
        self._partial = bytearray()
        self._data = []
        self._event = ""
        self._retry = None
        return []

    def _strip_bom(self, chunk: bytes) -> bytes:
        # Hold back a stream that so far is a proper prefix of the BOM: the rest of the
        # BOM may be in the next read.
        pending = bytes(self._partial) + chunk
        if len(pending) < len(_BOM) and _BOM.startswith(pending):
            self._partial = bytearray(pending)
            return b""
        self._bom_checked = True
        self._partial = bytearray()
        return pending[len(_BOM) :] if pending.startswith(_BOM) else pending

    def _lines(self, lines: list[str]) -> list[Event]:
        events: list[Event] = []
        data = self._data
        for line in lines:
            if line.startswith("data:"):  # by far the most common line: test it first
                data.append(line[6:] if line[5:6] == " " else line[5:])
            elif not line:
                if data:
                    events.append(
                        Event(self._event or "message", "\n".join(data), self.last_event_id, self._retry)
                    )
                    data = self._data = []
                self._event = ""
                self._retry = None
            elif line[0] != ":":
                name, _, value = line.partition(":")
                if value[:1] == " ":
                    value = value[1:]
                if name == "event":
                    self._event = value
                elif name == "data":  # "data" with no colon: an empty data line
                    data.append(value)
                elif name == "id":
                    if "\0" not in value:
                        self.last_event_id = value
                elif name == "retry":
                    if value.isascii() and value.isdigit():
                        self._retry = self.retry = int(value)
        return events
