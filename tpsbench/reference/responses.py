"""The reference endpoint's OpenAI Responses API (``POST /v1/responses``): its stream and its body.

Streaming, as OpenAI sends it (typed events with a ``sequence_number``, no ``[DONE]``): the first step
writes ``response.created``, ``response.in_progress``, ``response.output_item.added`` and
``response.content_part.added`` ahead of its text; every step one ``response.output_text.delta`` with that
step's tokens; the last step ``response.output_text.done``, ``response.content_part.done``,
``response.output_item.done`` and the terminal event: ``response.completed`` when the answer ended, or
``response.incomplete`` (``incomplete_details.reason: max_output_tokens``) when it hit the limit, with
``usage`` (``input_tokens``, ``output_tokens``). A token event costs one ``%`` format.
"""

from __future__ import annotations

from typing import Any

from tpsbench.reference.api import MODEL_NAME, PIECE, SHUTTING_DOWN, ParsedRequest, dumps

__all__ = ["ResponsesEncoder", "response_body"]

_TEXT: dict[int, bytes] = {}


def _text(n: int) -> bytes:
    text = _TEXT.get(n)
    if text is None:
        text = dumps(PIECE * n)
        if len(_TEXT) < 4096:
            _TEXT[n] = text
    return text


def _response(
    req: ParsedRequest, rid: str, created: int, tokens: int | None, reason: str | None
) -> dict[str, Any]:
    """The response object; ``tokens=None``: still in progress (no output, no usage)."""
    obj: dict[str, Any] = {
        "id": rid,
        "object": "response",
        "created_at": created,
        "model": MODEL_NAME,
        "status": "in_progress",
        "output": [],
        "incomplete_details": None,
        "usage": None,
    }
    if tokens is not None:
        obj["status"] = "incomplete" if reason == "length" else "completed"
        if reason == "length":
            obj["incomplete_details"] = {"reason": "max_output_tokens"}
        obj["output"] = [_message(rid, PIECE * tokens, "completed")]
        obj["usage"] = {
            "input_tokens": req.prompt_tokens,
            "output_tokens": tokens,
            "total_tokens": req.prompt_tokens + tokens,
        }
    return obj


def _message(rid: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [{"type": "output_text", "text": text, "annotations": []}]
    return {"id": "msg_" + rid, "type": "message", "role": "assistant", "status": status, "content": content}


class ResponsesEncoder:
    """The SSE bytes of one streamed Responses response, one :meth:`step` per engine step."""

    __slots__ = ("_created", "_delta", "_req", "_rid", "completion", "seq")

    def __init__(self, req: ParsedRequest, rid: str, created: int) -> None:
        self._req, self._rid, self._created = req, rid, created
        self._delta = (
            b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","item_id":"msg_'
            + rid.encode()
            + b'","output_index":0,"content_index":0,"delta":%b,"sequence_number":%d}\n\n'
        )
        self.completion = 0
        self.seq = 0

    def _event(self, kind: str, data: dict[str, Any]) -> bytes:
        self.seq += 1
        return b"event: %b\ndata: %b\n\n" % (
            kind.encode(),
            dumps({"type": kind, **data, "sequence_number": self.seq - 1}),
        )

    def step(self, tokens: int, finish_reason: str | None) -> bytes:
        out = b""
        if self.completion == 0:
            started = _response(self._req, self._rid, self._created, None, None)
            item = _message(self._rid, None, "in_progress")
            part = {"type": "output_text", "text": "", "annotations": []}
            out = (
                self._event("response.created", {"response": started})
                + self._event("response.in_progress", {"response": started})
                + self._event("response.output_item.added", {"output_index": 0, "item": item})
                + self._event(
                    "response.content_part.added",
                    {"item_id": item["id"], "output_index": 0, "content_index": 0, "part": part},
                )
            )
        self.completion += tokens
        self.seq += 1
        out += self._delta % (_text(tokens), self.seq - 1)
        if finish_reason is None:
            return out
        final = _response(self._req, self._rid, self._created, self.completion, finish_reason)
        item = final["output"][0]
        where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
        terminal = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        return (
            out
            + self._event("response.output_text.done", {**where, "text": item["content"][0]["text"]})
            + self._event("response.content_part.done", {**where, "part": item["content"][0]})
            + self._event("response.output_item.done", {"output_index": 0, "item": item})
            + self._event(terminal, {"response": final})
        )

    def abort(self) -> bytes:
        """An ``error`` event (the server is shutting down)."""
        err = SHUTTING_DOWN
        return self._event("error", {"code": err.code, "message": err.message, "param": None})


def response_body(req: ParsedRequest, rid: str, created: int, tokens: int, finish_reason: str) -> bytes:
    """The JSON body of a non-streamed Responses response of ``tokens`` tokens."""
    return dumps(_response(req, rid, created, tokens, finish_reason))
