"""classify(), kind_of_response() and parse_retry_after() over error bodies as providers
publish them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from bastion.resilience.errors import (
    ClassificationRule,
    ErrorKind,
    UpstreamError,
    UpstreamTimeout,
    classify,
    kind_of_message,
    kind_of_response,
    parse_retry_after,
)


def openai(message: str, type_: str | None, code: str | None, param: str | None = None) -> str:
    return json.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def anthropic(type_: str, message: str) -> str:
    return json.dumps({"type": "error", "error": {"type": type_, "message": message}})


# (case id, status, body, expected kind)
REAL_BODIES = [
    # --- OpenAI ---------------------------------------------------------------------
    (
        "openai context_length_exceeded",
        400,
        openai(
            "This model's maximum context length is 8192 tokens. However, your messages "
            "resulted in 8215 tokens. Please reduce the length of the messages.",
            "invalid_request_error",
            "context_length_exceeded",
            "messages",
        ),
        ErrorKind.CONTEXT_LENGTH,
    ),
    (
        "openai input tokens exceed the configured limit",
        400,
        openai(
            "Input tokens exceed the configured limit of 272000 tokens. Your messages "
            "resulted in 300421 tokens. Please reduce the length of the messages.",
            "invalid_request_error",
            "context_length_exceeded",
            "messages",
        ),
        ErrorKind.CONTEXT_LENGTH,
    ),
    (
        "openai rate_limit_exceeded",
        429,
        openai(
            "Rate limit reached for gpt-4 in organization org-abc on tokens per min (TPM): "
            "Limit 10000, Used 9000, Requested 2000. Please try again in 6s. Visit "
            "https://platform.openai.com/account/rate-limits to learn more.",
            "tokens",
            "rate_limit_exceeded",
        ),
        ErrorKind.RATE_LIMITED,
    ),
    (
        "openai free-tier rate limit linking the billing page",
        429,
        openai(
            "Rate limit reached for default-gpt-3.5-turbo in organization org-abc on "
            "requests per min. Limit: 3 / min. Please try again in 20s. Contact us through "
            "our help center at help.openai.com if you continue to have issues. Please add "
            "a payment method to your account to increase your rate limit. Visit "
            "https://platform.openai.com/account/billing to add a payment method.",
            "requests",
            "rate_limit_exceeded",
        ),
        ErrorKind.RATE_LIMITED,
    ),
    (
        "openai insufficient_quota 429",
        429,
        openai(
            "You exceeded your current quota, please check your plan and billing details. "
            "For more information on this error, read the docs: "
            "https://platform.openai.com/docs/guides/error-codes/api-errors.",
            "insufficient_quota",
            "insufficient_quota",
        ),
        ErrorKind.QUOTA_EXCEEDED,
    ),
    (
        "openai server_error 500",
        500,
        openai(
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
        ErrorKind.SERVER_ERROR,
    ),
    (
        "openai engine overloaded 503",
        503,
        openai("The engine is currently overloaded, please try again later", "server_error", None),
        ErrorKind.UNAVAILABLE,
    ),
    (
        "azure content_filter 400",
        400,
        json.dumps(
            {
                "error": {
                    "message": "The response was filtered due to the prompt triggering Azure "
                    "OpenAI's content management policy. Please modify your prompt and retry. "
                    "To learn more about our content filtering policies please read our "
                    "documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
                    "type": None,
                    "param": "prompt",
                    "code": "content_filter",
                    "status": 400,
                    "innererror": {
                        "code": "ResponsibleAIPolicyViolation",
                        "content_filter_result": {
                            "hate": {"filtered": True, "severity": "high"},
                            "self_harm": {"filtered": False, "severity": "safe"},
                            "sexual": {"filtered": False, "severity": "safe"},
                            "violence": {"filtered": False, "severity": "safe"},
                        },
                    },
                }
            }
        ),
        ErrorKind.CONTENT_FILTER,
    ),
    (
        "openai content_policy_violation",
        400,
        openai(
            "Your request was rejected as a result of our safety system. Your prompt may "
            "contain text that is not allowed by our safety system.",
            "invalid_request_error",
            "content_policy_violation",
        ),
        ErrorKind.CONTENT_FILTER,
    ),
    (
        "openai invalid api key 401",
        401,
        openai(
            "Incorrect API key provided: sk-abc. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        ),
        ErrorKind.AUTH,
    ),
    (
        "openai unknown parameter 400",
        400,
        openai("Unrecognized request argument supplied: foo", "invalid_request_error", None, None),
        ErrorKind.INVALID_REQUEST,
    ),
    # --- Anthropic ------------------------------------------------------------------
    (
        "anthropic prompt is too long",
        400,
        anthropic("invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum"),
        ErrorKind.CONTEXT_LENGTH,
    ),
    (
        "anthropic overloaded 529",
        529,
        anthropic("overloaded_error", "Overloaded"),
        ErrorKind.UNAVAILABLE,
    ),
    (
        "anthropic rate_limit_error 429",
        429,
        anthropic(
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit "
            "(https://docs.anthropic.com/en/api/rate-limits); see the response headers for "
            "current usage. Please reduce the prompt length or the maximum tokens requested, "
            "or try again later. You may also contact sales at "
            "https://www.anthropic.com/contact-sales to discuss your options for a rate "
            "limit increase.",
        ),
        ErrorKind.RATE_LIMITED,
    ),
    (
        "anthropic authentication_error 401",
        401,
        anthropic("authentication_error", "invalid x-api-key"),
        ErrorKind.AUTH,
    ),
    (
        "anthropic permission_error 403",
        403,
        anthropic(
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        ),
        ErrorKind.FORBIDDEN,
    ),
    (
        "anthropic not_found_error 404",
        404,
        anthropic("not_found_error", "model: claude-3-opus-2099"),
        ErrorKind.NOT_FOUND,
    ),
    (
        "anthropic api_error 500",
        500,
        anthropic("api_error", "Internal server error"),
        ErrorKind.SERVER_ERROR,
    ),
    (
        "anthropic request_too_large 413",
        413,
        anthropic("request_too_large", "Request exceeds the maximum allowed number of bytes."),
        ErrorKind.CONTEXT_LENGTH,
    ),
    (
        "anthropic credit balance too low 400",
        400,
        anthropic(
            "invalid_request_error",
            "Your credit balance is too low to access the Anthropic API. Please go to Plans "
            "& Billing to upgrade or purchase credits.",
        ),
        ErrorKind.QUOTA_EXCEEDED,
    ),
    (
        "anthropic billing_error 402",
        402,
        anthropic("billing_error", "Your credit balance is too low to make API requests."),
        ErrorKind.QUOTA_EXCEEDED,
    ),
    (
        "anthropic prefill not supported",
        400,
        anthropic(
            "invalid_request_error",
            "This model does not support assistant message prefill. The conversation must "
            "end with a user message.",
        ),
        ErrorKind.PREFILL_REJECTED,
    ),
    # --- vLLM, llama.cpp, Ollama ------------------------------------------------------
    (
        "vllm maximum context length",
        400,
        json.dumps(
            {
                "object": "error",
                "message": "This model's maximum context length is 4096 tokens. However, you "
                "requested 5000 tokens (4000 in the messages, 1000 in the completion). Please "
                "reduce the length of the messages or completion.",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            }
        ),
        ErrorKind.CONTEXT_LENGTH,
    ),
    (
        "llama.cpp exceed_context_size_error",
        400,
        json.dumps(
            {
                "error": {
                    "code": 400,
                    "message": "request (4476 tokens) exceeds the available context size "
                    "(4096 tokens), try increasing it",
                    "type": "exceed_context_size_error",
                    "n_prompt_tokens": 4476,
                    "n_ctx": 4096,
                }
            }
        ),
        ErrorKind.CONTEXT_LENGTH,
    ),
    (
        "ollama model not found 404",
        404,
        json.dumps({"error": 'model "llama3" not found, try pulling it first'}),
        ErrorKind.NOT_FOUND,
    ),
    # --- Mistral, Gemini ------------------------------------------------------------
    (
        "mistral too large for model",
        400,
        json.dumps(
            {
                "object": "error",
                "message": "Prompt contains 40000 tokens and 0 draft tokens, too large for "
                "model with 32768 maximum context length",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        ),
        ErrorKind.CONTEXT_LENGTH,
    ),
    (
        "gemini input token count exceeds",
        400,
        json.dumps(
            {
                "error": {
                    "code": 400,
                    "message": "The input token count (1200000) exceeds the maximum number of "
                    "tokens allowed (1048576).",
                    "status": "INVALID_ARGUMENT",
                }
            }
        ),
        ErrorKind.CONTEXT_LENGTH,
    ),
    (
        "gemini model overloaded 503",
        503,
        json.dumps(
            {
                "error": {
                    "code": 503,
                    "message": "The model is overloaded. Please try again later.",
                    "status": "UNAVAILABLE",
                }
            }
        ),
        ErrorKind.UNAVAILABLE,
    ),
]


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [case[1:] for case in REAL_BODIES],
    ids=[case[0] for case in REAL_BODIES],
)
def test_real_error_body_is_classified(status: int, body: str, kind: ErrorKind) -> None:
    assert kind_of_response(status, body) is kind
    assert classify(status=status, body=body).kind is kind


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, ErrorKind.AUTH),
        (403, ErrorKind.FORBIDDEN),
        (404, ErrorKind.NOT_FOUND),
        (408, ErrorKind.TIMEOUT),
        (422, ErrorKind.INVALID_REQUEST),
        (429, ErrorKind.RATE_LIMITED),
        (500, ErrorKind.SERVER_ERROR),
        (501, ErrorKind.SERVER_ERROR),
        (502, ErrorKind.UNAVAILABLE),
        (503, ErrorKind.UNAVAILABLE),
        (504, ErrorKind.UNAVAILABLE),
        (520, ErrorKind.SERVER_ERROR),
    ],
)
def test_bare_status_is_read_by_the_table(status: int, kind: ErrorKind) -> None:
    assert kind_of_response(status) is kind


def test_500_that_says_overloaded_is_unavailable() -> None:
    assert (
        kind_of_response(500, anthropic("overloaded_error", "Overloaded")) is ErrorKind.UNAVAILABLE
    )


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("prompt is too long: 208310 tokens > 200000 maximum", ErrorKind.CONTEXT_LENGTH),
        ("Overloaded", ErrorKind.UNAVAILABLE),
        ("Rate limit exceeded", ErrorKind.RATE_LIMITED),
        ("Output blocked by content filtering policy", ErrorKind.CONTENT_FILTER),
        ("Internal server error", ErrorKind.SERVER_ERROR),
    ],
)
def test_in_band_stream_error_message_is_classified(message: str, kind: ErrorKind) -> None:
    assert kind_of_message(message) is kind


# --- Retry-After --------------------------------------------------------------------

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("headers", "now", "expected"),
    [
        ({"retry-after": "7"}, None, 7.0),
        ({"retry-after": " 1.5 "}, None, 1.5),
        ({"retry-after": "Wed, 01 Jan 2025 12:00:30 GMT"}, NOW, 30.0),
        ({"retry-after": "Wed, 01 Jan 2025 11:59:00 GMT"}, NOW, 0.0),
        ({"retry-after": "Wed, 01 Jan 2025 12:00:30 GMT"}, None, None),
        ({"retry-after-ms": "250"}, None, 0.25),
        ({"x-ms-retry-after-ms": "1500"}, None, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, None, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "9"}, None, 9.0),
        ({"retry-after": "soon"}, NOW, None),
        ({"retry-after": "-3"}, None, None),
        ({"retry-after": "inf"}, None, None),
        ({"retry-after": "nan"}, None, None),
        ({"retry-after-ms": "inf"}, None, None),
        ({}, None, None),
    ],
    ids=[
        "seconds",
        "fractional seconds with spaces",
        "http-date",
        "http-date in the past",
        "http-date without now",
        "retry-after-ms",
        "x-ms-retry-after-ms",
        "ms header wins",
        "garbage ms falls back",
        "garbage",
        "negative",
        "infinite",
        "nan",
        "infinite ms",
        "absent",
    ],
)
def test_parse_retry_after(
    headers: dict[str, str], now: float | None, expected: float | None
) -> None:
    assert parse_retry_after(headers, now) == expected


def test_classify_reads_retry_after_from_headers_in_any_case() -> None:
    date = format_datetime(datetime(2025, 1, 1, 12, 0, 10, tzinfo=UTC), usegmt=True)
    result = classify(status=429, headers={"Retry-After": date}, body="", now=NOW)
    assert result.kind is ErrorKind.RATE_LIMITED
    assert result.retry_after == 10.0


def test_upstream_error_retry_after_wins_over_its_headers() -> None:
    error = UpstreamError(
        ErrorKind.RATE_LIMITED,
        "slow down",
        status=429,
        headers={"retry-after": "9"},
        retry_after=2.0,
    )
    assert classify(error).retry_after == 2.0


# --- user rules ---------------------------------------------------------------------


def test_status_range_rule_wins_over_the_table() -> None:
    rule = ClassificationRule(ErrorKind.UNAVAILABLE, status=(400, 499))
    assert classify(status=404, rules=(rule,)).kind is ErrorKind.UNAVAILABLE


def test_exact_status_rule_does_not_match_another_status() -> None:
    rule = ClassificationRule(ErrorKind.UNAVAILABLE, status=418)
    assert classify(status=404, rules=(rule,)).kind is ErrorKind.NOT_FOUND


def test_header_regex_rule_wins_over_the_table() -> None:
    rule = ClassificationRule(ErrorKind.UNAVAILABLE, header=("X-Upstream-State", "^drain"))
    result = classify(status=500, headers={"x-upstream-state": "Draining"}, rules=(rule,))
    assert result.kind is ErrorKind.UNAVAILABLE


def test_body_regex_rule_wins_over_the_table() -> None:
    rule = ClassificationRule(ErrorKind.RATE_LIMITED, status=400, body=r"\bquota\b")
    result = classify(status=400, body='{"error": "Quota exhausted, retry later"}', rules=(rule,))
    assert result.kind is ErrorKind.RATE_LIMITED


def test_rule_needs_every_condition_to_match() -> None:
    rule = ClassificationRule(ErrorKind.RATE_LIMITED, status=400, body="quota")
    assert classify(status=500, body="quota", rules=(rule,)).kind is ErrorKind.SERVER_ERROR


def test_rules_are_tried_in_order() -> None:
    first = ClassificationRule(ErrorKind.UNAVAILABLE, status=500)
    second = ClassificationRule(ErrorKind.PROTOCOL, status=500)
    assert classify(status=500, rules=(first, second)).kind is ErrorKind.UNAVAILABLE


def test_predicate_rule_wins_over_the_exception_kind() -> None:
    def gateway_says_busy(exc: BaseException) -> ErrorKind | None:
        return ErrorKind.UNAVAILABLE if "busy" in str(exc) else None

    error = UpstreamError(ErrorKind.SERVER_ERROR, "gateway busy", status=500)
    assert classify(error, rules=(gateway_says_busy,)).kind is ErrorKind.UNAVAILABLE


def test_predicate_rule_returning_none_passes_to_the_table() -> None:
    error = UpstreamError(ErrorKind.SERVER_ERROR, "boom", status=500)
    assert classify(error, rules=(lambda exc: None,)).kind is ErrorKind.SERVER_ERROR


def test_rule_sees_the_status_and_body_of_an_upstream_error() -> None:
    rule = ClassificationRule(ErrorKind.CONTENT_FILTER, status=400, body="blocked")
    error = UpstreamError(ErrorKind.INVALID_REQUEST, "bad", status=400, body="output blocked")
    assert classify(error, rules=(rule,)).kind is ErrorKind.CONTENT_FILTER


# --- exceptions ---------------------------------------------------------------------


def test_upstream_error_keeps_the_kind_its_provider_gave() -> None:
    error = UpstreamError(ErrorKind.CONTEXT_LENGTH, "too long", status=400, body="whatever")
    result = classify(error)
    assert (result.kind, result.status) == (ErrorKind.CONTEXT_LENGTH, 400)
    assert "too long" in result.message


def test_upstream_timeout_is_a_timeout() -> None:
    assert classify(UpstreamTimeout("first_token", 15.0)).kind is ErrorKind.TIMEOUT


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (TimeoutError(), ErrorKind.TIMEOUT),
        (ConnectionResetError(104, "Connection reset by peer"), ErrorKind.CONNECTION),
        (ConnectionRefusedError(111, "Connection refused"), ErrorKind.CONNECTION),
        (OSError(-2, "Name or service not known"), ErrorKind.CONNECTION),
        (ValueError("bad json"), ErrorKind.UNKNOWN),
    ],
    ids=[
        "TimeoutError",
        "ConnectionResetError",
        "ConnectionRefusedError",
        "dns OSError",
        "ValueError",
    ],
)
def test_foreign_exception_is_read_by_type(error: BaseException, kind: ErrorKind) -> None:
    result = classify(error)
    assert result.kind is kind
    assert result.status is None


def test_nothing_to_classify_is_unknown() -> None:
    assert classify().kind is ErrorKind.UNKNOWN
