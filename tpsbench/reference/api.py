"""The reference endpoint's OpenAI API: request validation, and responses as ready-to-send bytes.

Model ``llama-4-maverick-b200-sim``. Token accounting: generated text is made of 4-character pieces
(" tok"), so ``ceil(chars / 4)`` of any chunk is its token count; prompt tokens are ``ceil(chars / 4)`` of
the prompt text (summed over messages). Bad requests raise :class:`ApiError`, whose :meth:`ApiError.body`
is OpenAI's error shape ``{"error": {"message", "type", "param", "code"}}``.

Streaming (vLLM style): one SSE event per engine step per request (1..k+1 tokens), a role-only delta with
the first chat token, ``finish_reason`` on the last token event, cumulative ``usage`` on every event with
``stream_options.continuous_usage_stats``, a usage-only event with ``include_usage``, then ``[DONE]``.
:class:`StreamEncoder` builds each step's events as one ``bytes`` from pieces encoded once (per process
for the token choices, per stream for the ``id`` prefix): the simulator writes tens of thousands of chunks
a second, so a chunk costs one ``%`` format, never a ``json.dumps``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from tpsbench.core.estimate import estimate_tokens, tokens_for_chars
from tpsbench.reference.model import DEFAULT_PARAMS, ModelParams

MODEL_NAME = "llama-4-maverick-b200-sim"
PIECE = " tok"  # 4 characters: one token under the ceil(chars / 4) rule

Api = Literal["chat", "completions", "messages", "responses"]
ROUTES: dict[str, Api] = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/messages": "messages",  # Anthropic Messages: streams from .anthropic
    "/v1/responses": "responses",  # OpenAI Responses: streams from .responses
}
_JSON_SEPARATORS = (",", ":")


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes (responses that are built once per request)."""
    return json.dumps(obj, separators=_JSON_SEPARATORS).encode()


class ApiError(Exception):
    """An OpenAI-style error: HTTP status and the ``error`` object's fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type_: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type_

    def body(self, api: Api = "chat") -> bytes:
        """OpenAI's error shape, or Anthropic's (``{"type": "error", "error": {"type", "message"}}``)."""
        if api == "messages":
            return dumps({"type": "error", "error": {"type": self.type, "message": self.message}})
        return dumps(
            {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        )


SHUTTING_DOWN = ApiError(
    503, "the server is shutting down", code="server_shutting_down", type_="server_error"
)


class ParsedRequest(NamedTuple):
    """What the engine and the response writer need from a completion request (a tuple: made per
    request, half the cost of a frozen dataclass)."""

    api: Api
    prompt_tokens: int
    max_tokens: int
    min_tokens: int
    ignore_eos: bool
    stream: bool
    include_usage: bool
    continuous_usage: bool


count_tokens = estimate_tokens  # ceil(chars / 4): the simulator's tokenizer


def _content_chars(content: Any, where: str) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):  # content parts: count the text ones
        chars = 0
        for i, part in enumerate(content):
            if not isinstance(part, dict):
                raise ApiError(400, f"{where}[{i}] must be an object", param=where)
            text = part.get("text")
            if isinstance(text, str):
                chars += len(text)
        return chars
    raise ApiError(400, f"{where} must be a string or a list of content parts", param=where)


def _int_field(body: Mapping[str, Any], name: str, minimum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"'{name}' must be an integer, got {value!r}", param=name, code="invalid_type")
    if value < minimum:
        raise ApiError(400, f"'{name}' must be >= {minimum}, got {value}", param=name, code="invalid_value")
    return value


def _bool_field(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(400, f"'{name}' must be a boolean, got {value!r}", param=name, code="invalid_type")
    return value


def _typed_prompt_chars(api: Api, body: Mapping[str, Any]) -> int:
    """Characters of a Messages prompt (``system`` + ``messages``) or a Responses one (``instructions`` +
    ``input``: a string, or a list of messages and other items whose text fields count)."""
    field = "messages" if api == "messages" else "input"
    items = body.get(field)
    extra = body.get("system" if api == "messages" else "instructions")
    chars = _content_chars(extra, "system" if api == "messages" else "instructions")
    if api == "responses" and isinstance(items, str) and items:
        return chars + len(items)
    if not isinstance(items, list) or not items:
        raise ApiError(
            400,
            f"'{field}' must be a non-empty list" + (" or a string" if api == "responses" else ""),
            param=field,
            code="missing_required_parameter" if items is None else "invalid_value",
        )
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ApiError(400, f"{field}[{i}] must be an object", param=f"{field}[{i}]")
        if api == "messages" and not isinstance(item.get("role"), str):
            raise ApiError(400, f"{field}[{i}] must be an object with a 'role'", param=f"{field}[{i}]")
        for key in ("content", "output", "arguments"):
            if key in item:
                chars += _content_chars(item[key], f"{field}[{i}].{key}")
    return chars


def _prompt_tokens(api: Api, body: Mapping[str, Any]) -> int:
    if api == "messages" or api == "responses":
        return max(1, tokens_for_chars(_typed_prompt_chars(api, body)))
    if api == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(
                400,
                "'messages' must be a non-empty list",
                param="messages",
                code="missing_required_parameter" if messages is None else "invalid_value",
            )
        chars = 0
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
                raise ApiError(400, f"messages[{i}] must be an object with a 'role'", param=f"messages[{i}]")
            chars += _content_chars(msg.get("content"), f"messages[{i}].content")
        return max(1, tokens_for_chars(chars))  # ceil(chars / 4) over all messages
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]  # a batch of one
    if isinstance(prompt, str) and prompt:
        return count_tokens(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return len(prompt)  # token ids
    if prompt is None:
        raise ApiError(400, "you must provide a 'prompt'", param="prompt", code="missing_required_parameter")
    raise ApiError(
        400,
        "'prompt' must be a non-empty string, a list of token ids, or a list of one "
        "of those (batched prompts are not supported)",
        param="prompt",
        code="invalid_value",
    )


def parse_request(api: Api, raw: bytes, params: ModelParams = DEFAULT_PARAMS) -> ParsedRequest:
    """Validate a request body; raise :class:`ApiError` (4xx) with a message naming the field."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(
            400, f"We could not parse the JSON body of your request: {exc}", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(
            400, "you must provide a model parameter", param="model", code="missing_required_parameter"
        )
    if model != MODEL_NAME:
        raise ApiError(
            404,
            f"The model '{model}' does not exist; this server serves '{MODEL_NAME}'",
            param="model",
            code="model_not_found",
        )
    prompt_tokens = _prompt_tokens(api, body)
    n = _int_field(body, "n", 1)
    if n not in (None, 1):
        raise ApiError(400, "only n=1 is supported", param="n", code="invalid_value")
    if api == "responses":
        name = "max_output_tokens"
    elif api == "chat" and body.get("max_completion_tokens") is not None:
        name = "max_completion_tokens"
    else:
        name = "max_tokens"
    requested = _int_field(body, name, 1)
    if api == "messages" and requested is None:  # Anthropic requires it
        raise ApiError(
            400, "max_tokens: Field required", param="max_tokens", code="missing_required_parameter"
        )
    room = params.max_model_len - prompt_tokens
    if room < 1:
        raise ApiError(
            400,
            f"the prompt ({prompt_tokens} tokens) leaves no room in the model's "
            f"{params.max_model_len}-token context",
            param={"completions": "prompt", "responses": "input"}.get(api, "messages"),
            code="context_length_exceeded",
        )
    if requested is not None and requested > room:
        raise ApiError(
            400,
            f"'{name}' is too large: {requested} + {prompt_tokens} prompt tokens exceed the "
            f"{params.max_model_len}-token context",
            param=name,
            code="context_length_exceeded",
        )
    max_tokens = requested if requested is not None else room
    min_tokens = _int_field(body, "min_tokens", 0) or 0
    if min_tokens > max_tokens:
        raise ApiError(
            400,
            f"'min_tokens' ({min_tokens}) must be <= '{name}' ({max_tokens})",
            param="min_tokens",
            code="invalid_value",
        )
    stream = _bool_field(body, "stream")
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise ApiError(400, "'stream_options' must be an object", param="stream_options")
        if not stream:
            raise ApiError(
                400, "'stream_options' is only allowed when 'stream' is true", param="stream_options"
            )
    opts: Mapping[str, Any] = options or {}
    return ParsedRequest(
        api=api,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        min_tokens=min_tokens,
        ignore_eos=_bool_field(body, "ignore_eos"),
        stream=stream,
        include_usage=_bool_field(opts, "include_usage"),
        continuous_usage=_bool_field(opts, "continuous_usage_stats"),
    )


_MODEL = MODEL_NAME.encode()
_CHOICES: dict[tuple[Api, int, str | None], bytes] = {}  # (api, tokens, finish_reason) -> choice JSON
_ROLE = b'{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}'
_USAGE = b',"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}'
_DONE = b"data: [DONE]\n\n"


def _choice(api: Api, n: int, finish_reason: str | None) -> bytes:
    key = (api, n, finish_reason)
    choice = _CHOICES.get(key)
    if choice is None:
        text = PIECE * n
        fr = "null" if finish_reason is None else f'"{finish_reason}"'
        if api == "chat":
            s = f'{{"index":0,"delta":{{"content":"{text}"}},"logprobs":null,"finish_reason":{fr}}}'
        else:
            s = f'{{"index":0,"text":"{text}","logprobs":null,"finish_reason":{fr}}}'
        choice = s.encode()
        if len(_CHOICES) < 4096:  # tokens per step are 1..k+1: a handful of keys in practice
            _CHOICES[key] = choice
    return choice


class StreamEncoder:
    """The SSE bytes of one streamed response, one :meth:`step` per engine step (see the module doc)."""

    __slots__ = ("_chat", "_continuous", "_frames", "_head", "_include_usage", "_prompt", "api", "completion")

    def __init__(self, req: ParsedRequest, rid: str, created: int) -> None:
        self.api: Api = req.api
        self._chat = req.api == "chat"
        self._prompt = req.prompt_tokens
        self._continuous = req.continuous_usage
        self._include_usage = req.include_usage
        kind = b"chat.completion.chunk" if self._chat else b"text_completion"
        # dumps of {"id", "object", "created", "model"} without its "}", a third of the cost: once per request
        self._head = b'data: {"id":%b,"object":"%b","created":%d,"model":"%b","choices":[' % (
            dumps(rid),
            kind,
            created,
            _MODEL,
        )
        self.completion = 0  # tokens sent so far
        self._frames: dict[int, bytes] = {}  # tokens -> HTTP chunk frame of a plain middle step

    def frame(self, tokens: int, finish_reason: str | None) -> bytes:
        """:meth:`step` framed as one HTTP/1.1 chunk (the terminating chunk after the last step). A middle
        step without per-chunk usage is the same bytes every time: built once per token count."""
        if finish_reason is None and not self._continuous and self.completion:
            frame = self._frames.get(tokens)
            if frame is None:
                body = self._head + _choice(self.api, tokens, None) + b"]}\n\n"
                frame = self._frames[tokens] = b"%x\r\n%b\r\n" % (len(body), body)
            self.completion += tokens
            return frame
        body = self.step(tokens, finish_reason)
        last = b"\r\n" if finish_reason is None else b"\r\n0\r\n\r\n"
        return b"%x\r\n%b%b" % (len(body), body, last)

    def middle_frames(self) -> dict[int, bytes] | None:
        """:meth:`frame`'s cache of plain middle steps by token count, once the first step went out (None
        while none may come from it, or never will: per-chunk usage). A writer that sends one of these
        instead of calling :meth:`frame` adds its tokens to :attr:`completion`."""
        return self._frames if self.completion and not self._continuous else None

    def _usage(self) -> bytes:
        c = self.completion
        return _USAGE % (self._prompt, c, self._prompt + c)

    def step(self, tokens: int, finish_reason: str | None) -> bytes:
        """The events of one step: its token event (after the role delta on the first chat step) and,
        on the last step, the usage event (if asked) and ``[DONE]``."""
        first = self.completion == 0
        self.completion += tokens
        tail = self._usage() + b"}\n\n" if self._continuous else b"}\n\n"
        event = self._head + _choice(self.api, tokens, finish_reason) + b"]" + tail
        if first and self._chat:  # vLLM style: the role-only delta goes out with the first token
            role_tail = (_USAGE % (self._prompt, 0, self._prompt) if self._continuous else b"") + b"}\n\n"
            event = self._head + _ROLE + b"]" + role_tail + event
        if finish_reason is None:
            return event
        if self._include_usage:
            event += self._head[: -len(b'"choices":[')] + b'"choices":[]' + self._usage() + b"}\n\n"
        return event + _DONE

    def abort(self) -> bytes:
        """An in-stream error event (the server is shutting down), then ``[DONE]``."""
        return b"data: " + SHUTTING_DOWN.body() + b"\n\n" + _DONE


def completion_body(req: ParsedRequest, rid: str, created: int, tokens: int, finish_reason: str) -> bytes:
    """The JSON body of a non-streamed completion of ``tokens`` tokens."""
    text = PIECE * tokens
    choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": finish_reason}
    if req.api == "chat":
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    return dumps(
        {
            "id": rid,
            "object": "chat.completion" if req.api == "chat" else "text_completion",
            "created": created,
            "model": MODEL_NAME,
            "choices": [choice],
            "usage": {
                "prompt_tokens": req.prompt_tokens,
                "completion_tokens": tokens,
                "total_tokens": req.prompt_tokens + tokens,
            },
        }
    )


def models_body(created: int, max_model_len: int) -> bytes:
    """``GET /v1/models``."""
    model = {
        "id": MODEL_NAME,
        "object": "model",
        "created": created,
        "owned_by": "tpsbench",
        "max_model_len": max_model_len,
    }
    return dumps({"object": "list", "data": [model]})
