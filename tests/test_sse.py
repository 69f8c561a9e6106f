"""The SSE parser against the WHATWG rules, plus split-invariance properties."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tpsbench.client.sse import SSEEvent, SSEParser


def events_of(*reads: bytes) -> list[SSEEvent]:
    p = SSEParser()
    out: list[SSEEvent] = []
    for r in reads:
        out.extend(p.feed(r))
    return out


def ev(data: str, event: str | None = None, id: str | None = None) -> SSEEvent:
    return SSEEvent(event=event, data=data, id=id)


def test_basic_and_several_events_in_one_read() -> None:
    assert events_of(b"data: a\n\ndata: b\n\n") == [ev("a"), ev("b")]


def test_event_split_across_reads_anywhere() -> None:
    stream = b"event: t\ndata: hello\n\n"
    for i in range(len(stream) + 1):
        assert events_of(stream[:i], stream[i:]) == [ev("hello", "t")], i


def test_crlf_split_between_reads_counts_once() -> None:
    # If the LF after a CR were a second line end, "data: a\r" + "\n" + "\r\n" would dispatch twice.
    assert events_of(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == [ev("a\nb")]


def test_cr_and_crlf_line_endings() -> None:
    assert events_of(b"data: a\r\rdata: b\r\n\r\n") == [ev("a"), ev("b")]


def test_multibyte_utf8_split_inside_a_character() -> None:
    raw = "data: héllo €\n\n".encode()
    cut = raw.index("€".encode()) + 1
    assert events_of(raw[:cut], raw[cut:]) == [ev("héllo €")]
    assert events_of(*(bytes([b]) for b in raw)) == [ev("héllo €")]


def test_invalid_utf8_becomes_replacement_character() -> None:
    assert events_of(b"data: a\xffb\n\n") == [ev("a\ufffdb")]


def test_bom_dropped_once_even_when_split() -> None:
    assert events_of(b"\xef\xbb", b"\xbfdata: x\n\n") == [ev("x")]
    # A second BOM is content: the line's field name is then "\ufeffdata", an unknown field.
    p = SSEParser()
    assert p.feed(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n") == []
    assert p.unknown_lines == 1


def test_comments_fields_without_colon_and_space_stripping() -> None:
    stream = b": keepalive\ndata\n\ndata:  two spaces\ndata:none\n\n"
    assert events_of(stream) == [ev(""), ev(" two spaces\nnone")]


def test_event_without_data_is_not_dispatched_and_type_resets() -> None:
    assert events_of(b"event: ping\n\ndata: x\n\n") == [ev("x")]
    assert events_of(b"event:\ndata: x\n\n") == [ev("x")]  # empty type = default "message"


def test_id_persists_and_nul_ids_are_ignored() -> None:
    got = events_of(b"id: 7\ndata: a\n\ndata: b\n\nid: bad\x00\ndata: c\n\nid\ndata: d\n\n")
    assert got == [ev("a", id="7"), ev("b", id="7"), ev("c", id="7"), ev("d", id="")]


def test_retry_and_unknown_fields() -> None:
    p = SSEParser()
    assert p.feed(b"retry: 1500\nretry: x1\nfoo: bar\ndata: a\n\n") == [ev("a")]
    assert p.retry_ms == 1500
    assert (p.field_lines, p.unknown_lines) == (3, 1)


def test_incomplete_event_discarded_at_close() -> None:
    p = SSEParser()
    assert p.feed(b"data: a\n\ndata: partial\n") == [ev("a")]
    p.close()
    assert p.discarded


def test_close_counts_unterminated_garbage_line() -> None:
    p = SSEParser()
    assert p.feed(b'{"id": "x", "choices": []}') == []
    p.close()
    assert p.unknown_lines == 1


def test_an_event_completes_in_the_read_of_its_closing_blank_line() -> None:
    # fed read by read (as the client decodes an exchange), each event comes out of the read that completed
    # it: the first line terminator of its closing blank line (a trailing LF only finishes a CRLF)
    reads = [(1, b"data: a\n"), (2, b"\ndata: b\n\ndata: c"), (3, b"\r\n\r"), (4, b"\n")]
    p = SSEParser()
    assert [(t, e) for t, data in reads for e in p.feed(data)] == [(2, ev("a")), (2, ev("b")), (3, ev("c"))]


# --- properties -----------------------------------------------------------------------------------------

FRAGMENTS = [
    b"data",
    b"event",
    b"id",
    b"retry",
    b":",
    b" ",
    b"\r",
    b"\n",
    b"\r\n",
    b"x",
    b"7",
    "é€".encode(),
    b"\xef\xbb\xbf",
    b"\xff",
    b"\x00",
]
sse_like_bytes = st.lists(st.sampled_from(FRAGMENTS), max_size=60).map(b"".join)


def feed_split(stream: bytes, cuts: list[int]) -> tuple[list[SSEEvent], tuple[int, int, bool]]:
    p = SSEParser()
    out: list[SSEEvent] = []
    prev = 0
    for c in [*sorted(set(cuts)), len(stream)]:
        out.extend(p.feed(stream[prev:c]))
        prev = c
    p.close()
    return out, (p.field_lines, p.unknown_lines, p.discarded)


def reference(stream: bytes) -> tuple[list[SSEEvent], tuple[int, int, bool]]:
    """The spec, transcribed literally: decode the whole stream, then walk it character by character."""
    text = stream.decode("utf-8", "replace")
    text = text.removeprefix("\ufeff")
    lines: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c in "\r\n":
            lines.append("".join(cur))
            cur = []
            if c == "\r" and text[i + 1 : i + 2] == "\n":
                i += 1
        else:
            cur.append(c)
        i += 1
    rest = "".join(cur)
    events: list[SSEEvent] = []
    data, etype, last_id, known, unknown = "", "", None, 0, 0

    def field(name: str, value: str) -> None:
        nonlocal data, etype, last_id, known, unknown
        if name not in ("event", "data", "id", "retry"):
            unknown += 1
            return
        known += 1
        if name == "event":
            etype = value
        elif name == "data":
            data += value + "\n"
        elif name == "id" and "\0" not in value:
            last_id = value

    def process(line: str) -> None:
        if line.startswith(":"):
            pass
        elif ":" in line:
            name, value = line.split(":", 1)
            field(name, value.removeprefix(" "))
        else:
            field(line, "")

    for line in lines:
        if line == "":
            if data:
                events.append(SSEEvent(etype or None, data.removesuffix("\n"), last_id))
            data, etype = "", ""
        else:
            process(line)
    if rest:  # unterminated: looked at for the statistics, never dispatched
        process(rest)
    return events, (known, unknown, bool(rest or data or etype))


@settings(max_examples=400, deadline=None)
@given(stream=sse_like_bytes | st.binary(max_size=80), data=st.data())
def test_any_split_matches_the_reference_parser(stream: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    assert feed_split(stream, cuts) == reference(stream)


line_text = st.text(st.characters(exclude_characters="\r\n\x00", exclude_categories=["Cs"]), max_size=8)
event_model = st.tuples(
    st.none() | line_text,  # event type
    st.lists(line_text, min_size=1, max_size=3),  # data lines
    st.none() | line_text,  # id
    st.booleans(),  # a comment line first
)


def serialize(events: list[tuple[str | None, list[str], str | None, bool]]) -> str:
    lines: list[str] = []
    for etype, data_lines, eid, comment in events:
        if comment:
            lines.append(": note")
        if etype is not None:
            lines.append(f"event: {etype}")
        lines.extend(f"data: {d}" for d in data_lines)
        if eid is not None:
            lines.append(f"id: {eid}")
        lines.append("")
    return "".join(line + "\n" for line in lines)


@settings(max_examples=200, deadline=None)
@given(model=st.lists(event_model, max_size=5), eol=st.sampled_from(["\n", "\r\n", "\r"]), data=st.data())
def test_line_endings_are_equivalent_and_events_match_the_model(
    model: list[tuple[str | None, list[str], str | None, bool]], eol: str, data: st.DataObject
) -> None:
    expected: list[SSEEvent] = []
    last_id: str | None = None
    for etype, data_lines, eid, _ in model:
        last_id = eid if eid is not None else last_id
        expected.append(SSEEvent(etype or None, "\n".join(data_lines), last_id))
    stream = serialize(model).replace("\n", eol).encode()
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    assert feed_split(stream, cuts)[0] == expected
