"""OpenAI chat completions (``POST /chat/completions``) and legacy completions (``POST /completions``).

Request: ``{"model", "messages" | "prompt", "stream": true, "stream_options": {"include_usage": true}}``
(plus ``"continuous_usage_stats": true`` with ``endpoint.continuous_usage``), ``max_tokens`` under
``workload.max_tokens_field``, ``"ignore_eos": true`` and ``"min_tokens": max_tokens`` when the workload
asks for them, then ``endpoint.extra_body`` merged on top (shallow: it can override any key). The key goes
in ``Authorization: Bearer``.

Stream: ``data:`` events, ended by ``data: [DONE]``. A *token chunk* is an event whose ``choices[0]``
carries generated text: ``delta.content``, ``delta.reasoning_content`` / ``delta.reasoning``,
``delta.tool_calls[*].function.arguments`` (chat) or ``text`` (completions). Role-only deltas and
usage-only chunks are not token chunks. ``usage`` comes from the last event that has it (a per-chunk
``completion_tokens`` is kept per token chunk, for ``continuous_usage_stats``); ``finish_reason`` from the
last choice that has one. ``{"error": ...}`` (or vLLM's older ``"object": "error"``) is an in-stream error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tpsbench.client.apis.base import (
    BadShape,
    BearerAuth,
    PromptLike,
    Scan,
    ScanSteps,
    Stepped,
    error_message,
    finish_body,
    int_or_none,
    iter_events,
    prompt_messages,
    text_field,
)
from tpsbench.core.record import ErrorKind

if TYPE_CHECKING:
    from tpsbench.config.scenario import Endpoint, Workload

__all__ = ["CHAT", "COMPLETIONS", "ChatApi"]


class ChatApi(Stepped, BearerAuth):
    """Chat completions, or (``completions=True``) the legacy completions API."""

    end_event = "data: [DONE]"

    def __init__(self, *, completions: bool = False) -> None:
        self.completions = completions
        self.name = "completions" if completions else "chat"
        self.path = "/completions" if completions else "/chat/completions"

    def build_body(
        self, endpoint: Endpoint, model: str, prompt: PromptLike, workload: Workload
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model}
        if not self.completions:
            body["messages"] = prompt_messages(prompt)
        elif prompt.prompt is not None:
            body["prompt"] = prompt.prompt
        elif prompt.messages is not None:
            body["prompt"] = "\n\n".join(m.get("content", "") for m in prompt.messages)
        else:
            raise ValueError("prompt has neither messages nor prompt text")
        stream_options: dict[str, Any] = {"include_usage": True}
        if endpoint.continuous_usage:
            stream_options["continuous_usage_stats"] = True
        body["stream"] = True
        body["stream_options"] = stream_options
        body[workload.max_tokens_field] = prompt.max_tokens
        return finish_body(body, endpoint, prompt, workload)

    def scan_steps(self, reads: Sequence[tuple[int, bytes]]) -> ScanSteps:
        return iter_events(reads, _apply_chunk, done_data="[DONE]", pure=True)  # _apply_chunk reads no state


CHAT = ChatApi()
COMPLETIONS = ChatApi(completions=True)


def _apply_chunk(scan: Scan, t: int, obj: Any) -> bool:
    """Apply one decoded chunk; True if it was an in-stream error."""
    if type(obj) is not dict:
        raise BadShape("not a JSON object")
    err = obj.get("error")
    if err or obj.get("object") == "error":  # {"error": {...}}, or vLLM's older ErrorResponse
        scan.fail(ErrorKind.SERVER_ERROR_EVENT, error_message(err if err else obj))
        return True
    completion: int | None = None
    usage = obj.get("usage")
    if usage is not None:
        if type(usage) is not dict:
            raise BadShape("usage is not an object")
        completion = int_or_none(usage.get("completion_tokens"))
        if completion is not None:
            scan.completion_tokens = completion
        prompt_tokens = int_or_none(usage.get("prompt_tokens"))
        if prompt_tokens is not None:
            scan.prompt_tokens = prompt_tokens
    choices = obj.get("choices")
    if not choices:
        return False
    if type(choices) is not list or type(choices[0]) is not dict:
        raise BadShape("choices is not a list of objects")
    choice = choices[0]
    reason = choice.get("finish_reason")
    if reason is not None:
        scan.finish_reason = str(reason)
    text = _choice_text(choice)
    if text:
        scan.token_chunk(t, text, completion)
    return False


def _choice_text(choice: dict[str, Any]) -> str:
    """All generated text of one choice: completions ``text``; chat content, reasoning, tool-call args."""
    delta = choice.get("delta")
    if delta is None:
        text = choice.get("text")
        return "" if text is None else text_field(text, "text")
    if type(delta) is not dict:
        raise BadShape("delta is not an object")
    parts: list[str] = []
    for key in ("content", "reasoning_content", "reasoning"):
        value = delta.get(key)
        if value is not None:
            parts.append(text_field(value, key))
    calls = delta.get("tool_calls")
    if calls:
        if type(calls) is not list:
            raise BadShape("tool_calls is not a list")
        for call in calls:
            fn = call.get("function") if type(call) is dict else None
            args = fn.get("arguments") if type(fn) is dict else None
            if args is not None:
                parts.append(text_field(args, "arguments"))
    text = choice.get("text")  # no server sends both; if one did, its text is generated too
    if text is not None:
        parts.append(text_field(text, "text"))
    return parts[0] if len(parts) == 1 else "".join(parts)
