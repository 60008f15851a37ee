"""OpenAI's chat completions wire format: request reading, JSON answers, SSE chunks."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

import orjson

from bastion.testing.plan import Answer, ErrorName, Incoming, Turn
from bastion.testing.wire import BadRequest, content_text, require, sse

# (type, code, message) per status, worded as OpenAI (or Azure OpenAI) words them.
_STATUS: Mapping[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it.",
    ),
    408: ("server_error", None, "Request timed out."),
    413: ("invalid_request_error", None, "Request too large."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests per min (RPM). Please try again later.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The server is currently unavailable, please try again later."),
    504: ("server_error", None, "Gateway timeout."),
}

# Every answer names this build, as OpenAI's do; clients read it back from a gateway.
SYSTEM_FINGERPRINT = "fp_bastion_fleet"
CONTEXT_LENGTH_MESSAGE = (
    "This model's maximum context length is 8192 tokens. However, your messages resulted "
    "in 9000 tokens. Please reduce the length of the messages."
)
CONTENT_FILTER_MESSAGE = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content "
    "management policy. Please modify your prompt and retry. To learn more about our "
    "content filtering policies please read our documentation: "
    "https://go.microsoft.com/fwlink/?linkid=2198766"
)
PREFILL_MESSAGE = (
    "This model does not support assistant message prefill. "
    "The conversation must end with a user message."
)

_AZURE_VERDICT = {
    "code": "ResponsibleAIPolicyViolation",
    "content_filter_result": {
        "hate": {"filtered": True, "severity": "high"},
        "self_harm": {"filtered": False, "severity": "safe"},
        "sexual": {"filtered": False, "severity": "safe"},
        "violence": {"filtered": False, "severity": "safe"},
    },
}


def _error(
    message: str, type_: str | None, param: str | None, code: str | None, **extra: Any
) -> bytes:
    error = {"message": message, "type": type_, "param": param, "code": code, **extra}
    return orjson.dumps({"error": error})


class OpenAIWire:
    """`POST /v1/chat/completions`."""

    api = "openai"

    def read(self, body: Any) -> Incoming:
        if not isinstance(body, Mapping):
            raise BadRequest("the request body must be a JSON object")
        model = require(body, "model", str, "a string")
        messages = require(body, "messages", list, "a non-empty array")
        if not messages:
            raise BadRequest("'messages' must not be empty", "messages")
        turns: list[Turn] = []
        for i, message in enumerate(messages):
            if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
                raise BadRequest(f"messages[{i}] must be an object with a 'role'", "messages")
            turns.append(Turn(message["role"], content_text(message.get("content"))))
        stream = body.get("stream") is True
        options = body.get("stream_options")
        include_usage = isinstance(options, Mapping) and options.get("include_usage") is True
        return Incoming(self.api, model, stream, tuple(turns), include_usage, body)

    def error_body(self, status: int, error: ErrorName, message: str = "") -> bytes:
        if error == "context_length":
            return _error(
                CONTEXT_LENGTH_MESSAGE,
                "invalid_request_error",
                "messages",
                "context_length_exceeded",
            )
        if error == "content_filter":
            # Azure's shape: type is null, the policy verdicts ride in innererror.
            return _error(
                CONTENT_FILTER_MESSAGE,
                None,
                "prompt",
                "content_filter",
                status=400,
                innererror=_AZURE_VERDICT,
            )
        if error == "prefill":
            return _error(PREFILL_MESSAGE, "invalid_request_error", "messages", None)
        if error == "bad_request":
            return _error(message, "invalid_request_error", None, None)
        type_, code, text = _STATUS.get(
            status,
            ("server_error" if status >= 500 else "invalid_request_error", None, f"HTTP {status}"),
        )
        return _error(text, type_, None, code)

    def inband_error_body(self, message: str) -> bytes:
        # What OpenAI sends as a `data:` line when a stream fails after it started.
        return _error(message, "server_error", None, None)

    def completion(self, request: Incoming, answer: Answer, seq: int, finished: bool) -> bytes:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": answer.text if answer.text or not answer.tool_calls else None,
            "refusal": None,
        }
        if answer.tool_calls:
            message["tool_calls"] = [
                {
                    "id": _tool_id(seq, i),
                    "type": "function",
                    "function": {"name": name, "arguments": args},
                }
                for i, (name, args) in enumerate(answer.tool_calls)
            ]
        return orjson.dumps(
            {
                "id": f"chatcmpl-fake{seq}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.model,
                "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": _logprobs(request, _words(answer.text)),
                        "finish_reason": _finish_reason(answer) if finished else None,
                    }
                ],
                "usage": _usage(request, answer),
            }
        )

    def encoder(self, request: Incoming, seq: int) -> OpenAIEncoder:
        return OpenAIEncoder(request, seq)


class OpenAIEncoder:
    """`data: {chat.completion.chunk}` events, ending with `data: [DONE]`."""

    def __init__(self, request: Incoming, seq: int) -> None:
        self._request = request
        self._seq = seq
        self._created = int(time.time())

    def _chunk(
        self,
        delta: Mapping[str, Any],
        finish_reason: str | None = None,
        logprobs: Mapping[str, Any] | None = None,
    ) -> bytes:
        return sse(
            {
                "id": f"chatcmpl-fake{self._seq}",
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._request.model,
                "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": [
                    {
                        "index": 0,
                        "delta": delta,
                        "logprobs": logprobs,
                        "finish_reason": finish_reason,
                    }
                ],
            }
        )

    def start(self) -> bytes:
        return self._chunk({"role": "assistant", "content": "", "refusal": None})

    def text(self, piece: str) -> bytes:
        return self._chunk({"content": piece}, None, _logprobs(self._request, [piece]))

    def tool_start(self, index: int, name: str) -> bytes:
        call = {
            "index": index,
            "id": _tool_id(self._seq, index),
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        return self._chunk({"tool_calls": [call]})

    def tool_args(self, index: int, piece: str) -> bytes:
        return self._chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})

    def finish(self, answer: Answer) -> bytes:
        out = self._chunk({}, _finish_reason(answer))
        if self._request.include_usage:
            out += sse(
                {
                    "id": f"chatcmpl-fake{self._seq}",
                    "object": "chat.completion.chunk",
                    "created": self._created,
                    "model": self._request.model,
                    "system_fingerprint": SYSTEM_FINGERPRINT,
                    "choices": [],
                    "usage": _usage(self._request, answer),
                }
            )
        return out

    def done(self) -> bytes:
        return b"data: [DONE]\n\n"

    def error(self, message: str) -> bytes:
        return b"data: " + _error(message, "server_error", None, None) + b"\n\n"

    def malformed(self) -> bytes:
        return b'data: {"id": "chatcmpl-fake", "choices": [{"delta": {"content": "\n\n'


def _tool_id(seq: int, index: int) -> str:
    return f"call_fake{seq}_{index}"


def _finish_reason(answer: Answer) -> str:
    return "tool_calls" if answer.tool_calls else "stop"


def _usage(request: Incoming, answer: Answer) -> dict[str, Any]:
    prompt, completion = request.prompt_tokens, answer.completion_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        # As OpenAI reports them; a gateway that rebuilds answers tends to lose these.
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _words(text: str) -> list[str]:
    return re.findall(r"\s*\S+|\s+", text)


def _logprobs(request: Incoming, tokens: list[str]) -> dict[str, Any] | None:
    """OpenAI's `logprobs` object when the request asked for it (`logprobs: true`): one
    entry per token (a streamed piece, or a word of a whole answer), with its bytes and
    a made-up but steady log probability; with `top_logprobs`, the token itself as its
    one alternative."""
    if request.body.get("logprobs") is not True or not tokens:
        return None
    top = request.body.get("top_logprobs")
    count = top if isinstance(top, int) and not isinstance(top, bool) and top > 0 else 0
    entries = []
    for token in tokens:
        logprob = -round(0.01 * (len(token) % 7 + 1), 4)
        encoded = list(token.encode())
        alternatives = [{"token": token, "logprob": logprob, "bytes": encoded}][:count]
        entries.append(
            {"token": token, "logprob": logprob, "bytes": encoded, "top_logprobs": alternatives}
        )
    return {"content": entries, "refusal": None}
