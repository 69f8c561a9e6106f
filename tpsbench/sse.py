"""Incremental Server-Sent Events parser (WHATWG HTML, "Parsing an event stream").

Written by hand rather than taken from httpx-sse: that decoder is private and tied to httpx responses, and
tpsbench needs to know *which read* completed each event, to give each event the arrival time of the bytes
that finished it. Parsing happens after the request ends (the hot path keeps only ``(ns, bytes)`` reads), so
this module is about correctness first; it is still linear and allocation-light.

    >>> p = SSEParser()
    >>> p.feed(b"data: hel")
    []
    >>> p.feed(b"lo\\r\\n\\r\\ndata: [DONE]\\n\\n")
    [SSEEvent(event=None, data='hello', id=None), SSEEvent(event=None, data='[DONE]', id=None)]

What the spec asks, and what this parser does:

- the stream is UTF-8, decoded incrementally (a character may be split across reads; invalid bytes become
  U+FFFD); one leading BOM is dropped;
- lines end with CRLF, LF or CR; a CRLF split across two reads counts once;
- ``:comment`` lines are ignored; ``field: value`` drops one leading space of the value; a line without a
  colon is a field with an empty value;
- ``data`` lines are joined with ``"\\n"``; ``event`` sets the type (``None`` here when unset or empty,
  i.e. the spec's default "message"); ``id`` sets the last event id, which persists across events (ids with
  NUL are ignored); ``retry`` sets :attr:`SSEParser.retry_ms`; other field names are ignored;
- a blank line dispatches the event if any ``data`` line was seen; at the end of the stream an event not
  closed by a blank line is discarded.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

__all__ = ["SSEEvent", "SSEParser", "parse_reads"]

_LINE_END = re.compile(r"\r\n|\r|\n")
_KNOWN_FIELDS = frozenset({"event", "data", "id", "retry"})


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: its type (``None`` = default "message"), data and the last event id."""

    event: str | None
    data: str
    id: str | None


class SSEParser:
    """Feed bytes as they arrived; get back the events each feed completed.

    Besides events, the parser counts what it saw, so a caller can tell "not an event stream at all" (e.g. a
    JSON body) from "an event stream that ended early": :attr:`field_lines` (lines with a field the spec
    knows), :attr:`unknown_lines` (lines with any other field name), and, after :meth:`close`,
    :attr:`discarded` (an incomplete event or line was dropped at the end of the stream).
    """

    __slots__ = (
        "_data",
        "_decoder",
        "_event",
        "_last_id",
        "_line",
        "_skip_lf",
        "discarded",
        "field_lines",
        "retry_ms",
        "unknown_lines",
    )

    def __init__(self) -> None:
        # utf-8-sig drops one leading BOM, even when the BOM itself is split across reads.
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._line = ""  # the current line, not terminated yet
        self._skip_lf = False  # the last text ended with CR: an LF starting the next text is its CRLF's tail
        self._data: list[str] = []
        self._event = ""
        self._last_id: str | None = None
        self.retry_ms: int | None = None
        self.field_lines = 0
        self.unknown_lines = 0
        self.discarded = False

    def feed(self, data: bytes) -> list[SSEEvent]:
        """Parse ``data`` (the next bytes of the stream) and return the events it completed, in order."""
        return self._feed_text(self._decoder.decode(data))

    def close(self) -> None:
        """End of stream: flush the decoder and drop any incomplete event (nothing is dispatched).

        A final line without a terminator is still examined for the statistics (a JSON body without a
        trailing newline must count as an unknown line), then discarded with the rest.
        """
        self._feed_text(self._decoder.decode(b"", final=True))
        if self._line:
            self._process_line(self._line)
            self._line = ""
            self.discarded = True
        if self._data or self._event:
            self.discarded = True
        self._data = []
        self._event = ""

    def _feed_text(self, text: str) -> list[SSEEvent]:
        if not text:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        buf = self._line + text if self._line else text
        events: list[SSEEvent] = []
        pos = 0
        for m in _LINE_END.finditer(buf):
            ev = self._process_line(buf[pos : m.start()])
            if ev is not None:
                events.append(ev)
            pos = m.end()
        self._line = buf[pos:]
        # A lone CR at the very end may be the first half of a CRLF whose LF is in the next read.
        self._skip_lf = buf[-1] == "\r"
        return events

    def _process_line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name not in _KNOWN_FIELDS:
            self.unknown_lines += 1
            return None
        self.field_lines += 1
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif value.isascii() and value.isdigit():  # retry: only ASCII digits count
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = ""
            return None
        ev = SSEEvent(self._event or None, "\n".join(self._data), self._last_id)
        self._data = []
        self._event = ""
        return ev


def parse_reads(reads: list[tuple[int, bytes]]) -> list[tuple[int, SSEEvent]]:
    """Parse a recorded body: each event paired with the arrival time of the read that completed it.

    An event completes in the read holding the first line terminator of its closing blank line, so for
    ``data: x\\r\\n\\r`` + ``\\n`` it is the first read (the trailing LF only finishes the CRLF).

        >>> parse_reads([(10, b"data: a\\n"), (20, b"\\ndata: b\\n\\n")])
        [(20, SSEEvent(event=None, data='a', id=None)), (20, SSEEvent(event=None, data='b', id=None))]
    """
    parser = SSEParser()
    out: list[tuple[int, SSEEvent]] = []
    for t, data in reads:
        for ev in parser.feed(data):
            out.append((t, ev))
    return out
