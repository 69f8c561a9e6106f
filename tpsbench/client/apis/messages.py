"""The Anthropic Messages API (``POST /messages``), streamed.

Request: ``{"model", "messages", "max_tokens", "stream": true}``; ``system`` messages of the prompt become
the top-level ``system`` string (the API accepts only user/assistant turns in ``messages``);
``"ignore_eos": true`` and ``"min_tokens"`` when the workload asks for them (Anthropic's own API rejects
unknown fields: set both off for it); ``endpoint.extra_body`` merged on top. Headers: ``x-api-key`` (the
key) and ``anthropic-version: 2023-06-01`` (a scenario's ``endpoint.headers`` can set another).

Stream: typed events (``event: <type>`` and a JSON ``data`` whose ``type`` is the same; the data's type is
what counts). In order: ``message_start`` (``message.usage.input_tokens``), then per content block
``content_block_start``, ``content_block_delta``\\ s, ``content_block_stop``; ``ping`` anywhere;
``message_delta`` (``delta.stop_reason``, cumulative ``usage.output_tokens``); ``message_stop`` ends it
(there is no ``[DONE]``). Token chunks are the deltas with generated text: ``text_delta`` (``text``),
``thinking_delta`` (``thinking``), ``input_json_delta`` (``partial_json``, tool-call arguments); a
``signature_delta`` is not generated text. ``message_start`` and ``content_block_start`` never count as
the first token. ``error`` events (``{"type": "error", "error": {"type", "message"}}``, e.g. overloaded)
are in-stream errors. Other event types are ignored, as Anthropic asks of clients.

Usage: ``prompt_tokens`` is ``input_tokens`` plus the cache's ``cache_creation_input_tokens`` and
``cache_read_input_tokens`` (Anthropic counts cached input apart); ``completion_tokens`` the last
``message_delta`` ``output_tokens``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tpsbench.client.apis.base import (
    PromptLike,
    Scan,
    ScanSteps,
    Stepped,
    error_message,
    finish_body,
    int_or_none,
    iter_typed_events,
    obj_field,
    prompt_messages,
    text_field,
)
from tpsbench.core.record import ErrorKind

if TYPE_CHECKING:
    from tpsbench.config.scenario import Endpoint, Workload

__all__ = ["ANTHROPIC_VERSION", "MESSAGES", "MessagesApi"]

ANTHROPIC_VERSION = "2023-06-01"
_DELTA_TEXT = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "partial_json"}
_INPUT_KEYS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


class MessagesApi(Stepped):
    name = "messages"
    path = "/messages"
    end_event = "message_stop"

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key}

    def fixed_headers(self) -> dict[str, str]:
        return {"anthropic-version": ANTHROPIC_VERSION}

    def build_body(
        self, endpoint: Endpoint, model: str, prompt: PromptLike, workload: Workload
    ) -> dict[str, Any]:
        system = [m["content"] for m in prompt_messages(prompt) if m.get("role") == "system"]
        turns = [m for m in prompt_messages(prompt) if m.get("role") != "system"]
        body: dict[str, Any] = {"model": model}
        if system:
            body["system"] = "\n\n".join(system)
        body["messages"] = turns
        body["max_tokens"] = prompt.max_tokens
        body["stream"] = True
        return finish_body(body, endpoint, prompt, workload)

    def scan_steps(self, reads: Sequence[tuple[int, bytes]]) -> ScanSteps:
        return iter_typed_events(reads, _apply_event)


MESSAGES = MessagesApi()


def _apply_event(scan: Scan, t: int, kind: Any, obj: dict[str, Any]) -> bool:
    if kind == "content_block_delta":
        delta = obj_field(obj, "delta")
        if delta is not None:
            key = _DELTA_TEXT.get(str(delta.get("type")))
            if key is not None:
                text = text_field(delta.get(key), f"delta.{key}")
                if text:
                    scan.token_chunk(t, text)
    elif kind == "message_delta":
        delta = obj_field(obj, "delta")
        if delta is not None and delta.get("stop_reason") is not None:
            scan.finish_reason = str(delta["stop_reason"])
        _usage(scan, obj_field(obj, "usage"))
    elif kind == "message_start":
        message = obj_field(obj, "message")
        if message is not None:
            _usage(scan, obj_field(message, "usage"), output=False)
    elif kind == "content_block_start":
        block = obj_field(obj, "content_block")
        start = (block.get("text") or block.get("thinking")) if block is not None else None
        if start:  # a block normally starts empty; text it already carries is generated text
            scan.token_chunk(t, text_field(start, "content_block.text"))
    elif kind == "message_stop":
        scan.done_ns = t
        return True
    elif kind == "error":
        scan.fail(ErrorKind.SERVER_ERROR_EVENT, error_message(obj.get("error", obj)))
        return True
    return False  # ping, content_block_stop, and types added later


def _usage(scan: Scan, usage: dict[str, Any] | None, *, output: bool = True) -> None:
    """Input tokens (cached ones included) and, from ``message_delta`` only, the cumulative output tokens
    (``message_start``'s ``output_tokens`` is a placeholder, not a count)."""
    if usage is None:
        return
    parts = [int_or_none(usage.get(k)) for k in _INPUT_KEYS]
    if parts[0] is not None:
        scan.prompt_tokens = sum(p for p in parts if p is not None)
    if output:
        n = int_or_none(usage.get("output_tokens"))
        if n is not None:
            scan.completion_tokens = n
