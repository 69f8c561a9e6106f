"""Incremental Server-Sent Events parser (WHATWG HTML, "Parsing an event stream").

Written by hand rather than taken from httpx-sse: that decoder is private and tied to httpx responses, and
tpsbench needs to know *which read* completed each event, to give each event the arrival time of the bytes
that finished it.

    >>> p = SSEParser()
    >>> p.feed(b"data: hel")
    []
    >>> p.feed(b"lo\\r\\n\\r\\ndata: [DONE]\\n\\n")
    [SSEEvent(event=None, data='hello', id=None), SSEEvent(event=None, data='[DONE]', id=None)]

What the spec asks, and what this parser does:

- the stream is UTF-8 (invalid bytes become U+FFFD); one leading BOM is dropped;
- lines end with CRLF, LF or CR; a CRLF split across two reads counts once;
- ``:comment`` lines are ignored; ``field: value`` drops one leading space of the value; a line without a
  colon is a field with an empty value;
- ``data`` lines are joined with ``"\\n"``; ``event`` sets the type (``None`` here when unset or empty,
  i.e. the spec's default "message"); ``id`` sets the last event id, which persists across events (ids with
  NUL are ignored); ``retry`` sets :attr:`SSEParser.retry_ms`; other field names are ignored;
- a blank line dispatches the event if any ``data`` line was seen; at the end of the stream an event not
  closed by a blank line is discarded.

It splits lines on bytes and decodes only field values, once per event: CR and LF are ASCII, so they never
occur inside a multi-byte character and a character split across reads needs no special care. This is the
same result as decoding the whole stream first (the tests check it against a text-level reference parser),
at a fraction of the cost: the client parses every response, on the event loop that times the others.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["SSEEvent", "SSEParser"]

_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"
_KNOWN_FIELDS = frozenset({b"event", b"data", b"id", b"retry"})


class SSEEvent(NamedTuple):
    """One dispatched event: its type (``None`` = default "message"), data and the last event id."""

    event: str | None
    data: str
    id: str | None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


class SSEParser:
    """Feed bytes as they arrived; get back the events each feed completed.

    Besides events, the parser counts what it saw, so a caller can tell "not an event stream at all" (e.g. a
    JSON body) from "an event stream that ended early": :attr:`field_lines` (lines with a field the spec
    knows), :attr:`unknown_lines` (lines with any other field name), and, after :meth:`close`,
    :attr:`discarded` (an incomplete event or line was dropped at the end of the stream).
    """

    __slots__ = (
        "_at_start",
        "_data",
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
        self._at_start = True  # no byte past a possible BOM yet
        self._line = b""  # the current line, not terminated yet
        self._skip_lf = False  # the last read ended with CR: an LF starting the next read is its CRLF's tail
        self._data: list[bytes] = []
        self._event = b""
        self._last_id: str | None = None
        self.retry_ms: int | None = None
        self.field_lines = 0
        self.unknown_lines = 0
        self.discarded = False

    @property
    def idle(self) -> bool:
        """Between events: no partial line, field or event pending (the next read starts afresh)."""
        return not (self._at_start or self._line or self._skip_lf or self._data or self._event)

    def feed(self, data: bytes) -> list[SSEEvent]:
        """Parse ``data`` (the next bytes of the stream) and return the events it completed, in order."""
        if self._at_start:
            data = self._line + data
            self._line = b""
            if len(data) < len(_BOM) and _BOM.startswith(data):
                self._line = data  # maybe a BOM split across reads: wait for more
                return []
            self._at_start = False
            if data.startswith(_BOM):
                data = data[len(_BOM) :]
        if not data:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if data[0] == 0x0A:
                data = data[1:]
                if not data:
                    return []
        buf = self._line + data if self._line else data
        # A lone CR at the very end may be the first half of a CRLF whose LF is in the next read.
        self._skip_lf = buf[-1] == 0x0D
        events: list[SSEEvent] = []
        if 0x0D not in buf:  # the usual case: LF only, split in C
            lines = buf.split(b"\n")
            self._line = lines.pop()
        else:
            lines = _LINE_END.split(buf)
            self._line = lines.pop()
        process = self._process_line
        for line in lines:
            ev = process(line)
            if ev is not None:
                events.append(ev)
        return events

    def close(self) -> None:
        """End of stream: drop any incomplete event (nothing is dispatched).

        A final line without a terminator is still examined for the statistics (a JSON body without a
        trailing newline must count as an unknown line), then discarded with the rest.
        """
        if self._line:
            self._process_line(self._line)
            self._line = b""
            self.discarded = True
        if self._data or self._event:
            self.discarded = True
        self._data = []
        self._event = b""

    def _process_line(self, line: bytes) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == 0x3A:  # ":" comment
            return None
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self.field_lines += 1
            self._data.append(value)
        elif name not in _KNOWN_FIELDS:
            self.unknown_lines += 1
        else:
            self.field_lines += 1
            if name == b"event":
                self._event = value
            elif name == b"id":
                if b"\0" not in value:
                    self._last_id = _text(value)
            elif value.isdigit():  # retry; bytes.isdigit is ASCII digits only, as the spec wants
                self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        data = self._data
        if not data:
            self._event = b""
            return None
        ev = SSEEvent(
            _text(self._event) if self._event else None,
            _text(data[0] if len(data) == 1 else b"\n".join(data)),
            self._last_id,
        )
        self._data = []
        self._event = b""
        return ev
