"""The OpenAI Responses API (``POST /responses``), streamed.

Request: ``{"model", "input": [messages], "max_output_tokens", "stream": true, "store": false}`` (a
benchmark's responses need not be kept server-side; ``extra_body`` can say otherwise), ``"ignore_eos"``
and ``"min_tokens"`` when the workload asks for them, ``endpoint.extra_body`` merged on top. The key goes
in ``Authorization: Bearer``.

Stream: typed events (the JSON ``type`` counts): ``response.created``, ``response.in_progress``,
``response.output_item.added``, ``response.content_part.added``, then deltas, their ``.done`` events, and
one terminal event; there is no ``[DONE]``. Token chunks are the deltas with generated text:
``response.output_text.delta``, ``response.reasoning_text.delta``,
``response.reasoning_summary_text.delta``, ``response.refusal.delta`` and
``response.function_call_arguments.delta`` (``delta``, a string). ``response.created`` never counts as the
first token. The stream ends with ``response.completed``, or ``response.incomplete`` (e.g. the
``max_output_tokens`` limit; a complete stream too); both carry ``response.usage`` (``input_tokens``,
``output_tokens``); ``finish_reason`` is the response's ``status``, or ``incomplete_details.reason``.
``response.failed`` (its ``response.error``) and ``error`` events are in-stream errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tpsbench.client.apis.base import (
    BearerAuth,
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

__all__ = ["RESPONSES", "ResponsesApi"]

TEXT_DELTAS = frozenset(
    {
        "response.output_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_summary_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
    }
)


class ResponsesApi(Stepped, BearerAuth):
    name = "responses"
    path = "/responses"
    end_event = "response.completed"

    def build_body(
        self, endpoint: Endpoint, model: str, prompt: PromptLike, workload: Workload
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "input": prompt_messages(prompt),
            "max_output_tokens": prompt.max_tokens,
            "stream": True,
            "store": False,
        }
        return finish_body(body, endpoint, prompt, workload)

    def scan_steps(self, reads: Sequence[tuple[int, bytes]]) -> ScanSteps:
        return iter_typed_events(reads, _apply_event)


RESPONSES = ResponsesApi()


def _apply_event(scan: Scan, t: int, kind: Any, obj: dict[str, Any]) -> bool:
    if kind in TEXT_DELTAS:
        text = text_field(obj.get("delta"), "delta")
        if text:
            scan.token_chunk(t, text)
    elif kind == "response.completed" or kind == "response.incomplete":
        response = obj_field(obj, "response")
        if response is not None:
            _final(scan, response)
        scan.done_ns = t
        return True
    elif kind == "response.failed":
        response = obj_field(obj, "response") or {}
        scan.fail(ErrorKind.SERVER_ERROR_EVENT, error_message(response.get("error") or obj))
        return True
    elif kind == "error":
        detail = {k: obj[k] for k in ("code", "message", "param") if obj.get(k) is not None}
        scan.fail(ErrorKind.SERVER_ERROR_EVENT, error_message(detail or obj))
        return True
    return False


def _final(scan: Scan, response: dict[str, Any]) -> None:
    usage = obj_field(response, "usage")
    if usage is not None:
        scan.completion_tokens = int_or_none(usage.get("output_tokens"))
        scan.prompt_tokens = int_or_none(usage.get("input_tokens"))
    details = obj_field(response, "incomplete_details")
    reason = details.get("reason") if details is not None else None
    status = reason if reason is not None else response.get("status")
    if status is not None:
        scan.finish_reason = str(status)
