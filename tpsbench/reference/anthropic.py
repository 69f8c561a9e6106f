"""The reference endpoint's Anthropic Messages API (``POST /v1/messages``): its stream and its body.

Streaming, as Anthropic sends it (typed events, ``event:`` line and the same ``type`` in the data, no
``[DONE]``): the first step writes ``message_start`` (``usage.input_tokens``), ``content_block_start`` and
a ``ping`` ahead of its text; every step one ``content_block_delta`` (``text_delta``) with that step's
tokens; the last step ``content_block_stop``, ``message_delta`` (``stop_reason`` ``max_tokens`` or
``end_turn``, ``usage.output_tokens`` = every token sent) and ``message_stop``. Token events are built from
pieces encoded once per process (one ``%`` format per chunk), as :class:`.api.StreamEncoder` does.
"""

from __future__ import annotations

from typing import Any

from tpsbench.reference.api import MODEL_NAME, PIECE, SHUTTING_DOWN, ParsedRequest, dumps

__all__ = ["MessagesEncoder", "message_body", "stop_reason"]

_DELTAS: dict[int, bytes] = {}


def stop_reason(finish_reason: str) -> str:
    """The engine's finish reason in Anthropic's words."""
    return "max_tokens" if finish_reason == "length" else "end_turn"


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: %b\ndata: %b\n\n" % (kind.encode(), dumps({"type": kind, **data}))


def _delta(n: int) -> bytes:
    event = _DELTAS.get(n)
    if event is None:
        delta = {"type": "text_delta", "text": PIECE * n}
        event = _event("content_block_delta", {"index": 0, "delta": delta})
        if len(_DELTAS) < 4096:
            _DELTAS[n] = event
    return event


_BLOCK_START = _event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
_PING = _event("ping", {})
_BLOCK_STOP = _event("content_block_stop", {"index": 0})
_MESSAGE_DELTA = (
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"%b","stop_sequence":null},'
    b'"usage":{"output_tokens":%d}}\n\n'
)
_STOP = _event("message_stop", {})


class MessagesEncoder:
    """The SSE bytes of one streamed Messages response, one :meth:`step` per engine step."""

    __slots__ = ("_start", "completion")

    def __init__(self, req: ParsedRequest, rid: str, created: int) -> None:
        message: dict[str, Any] = {
            "id": rid,
            "type": "message",
            "role": "assistant",
            "model": MODEL_NAME,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": req.prompt_tokens, "output_tokens": 1},
        }
        self._start = _event("message_start", {"message": message}) + _BLOCK_START + _PING
        self.completion = 0

    def step(self, tokens: int, finish_reason: str | None) -> bytes:
        first = self.completion == 0
        self.completion += tokens
        event = self._start + _delta(tokens) if first else _delta(tokens)
        if finish_reason is None:
            return event
        reason = stop_reason(finish_reason).encode()
        return event + _BLOCK_STOP + _MESSAGE_DELTA % (reason, self.completion) + _STOP

    def abort(self) -> bytes:
        """Anthropic's in-stream error event (the server is shutting down)."""
        return b"event: error\ndata: %b\n\n" % SHUTTING_DOWN.body("messages")


def message_body(req: ParsedRequest, rid: str, tokens: int, finish_reason: str) -> bytes:
    """The JSON body of a non-streamed Messages response of ``tokens`` tokens."""
    return dumps(
        {
            "id": rid,
            "type": "message",
            "role": "assistant",
            "model": MODEL_NAME,
            "content": [{"type": "text", "text": PIECE * tokens}],
            "stop_reason": stop_reason(finish_reason),
            "stop_sequence": None,
            "usage": {"input_tokens": req.prompt_tokens, "output_tokens": tokens},
        }
    )
