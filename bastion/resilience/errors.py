"""The error tree and the one place that classifies failures.

    BastionError
     └── UpstreamError            an upstream call failed; carries its ErrorKind
          ├── UpstreamTimeout     connect / headers / first token / idle / total
          └── StreamBroken        a 200 stream that lied: cut, malformed, in-band error

Providers translate their own exceptions into this tree once, at their edge.
`classify()` turns any exception (or a raw status/headers/body) into a
`Classification`; retry, failover, breaker and outlier ejection all read that one
answer. User rules run before the built-in table, so a deployment can say "a 400
whose body mentions `quota` is rate limiting" without forking anything.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum


class ErrorKind(StrEnum):
    CONNECTION = "connection"
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXCEEDED = "quota_exceeded"
    UNAVAILABLE = "unavailable"
    SERVER_ERROR = "server_error"
    PROTOCOL = "protocol"
    CONTEXT_LENGTH = "context_length"
    CONTENT_FILTER = "content_filter"
    INVALID_REQUEST = "invalid_request"
    AUTH = "auth"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    PREFILL_REJECTED = "prefill_rejected"
    UNKNOWN = "unknown"


# Kinds that say something about the endpoint's health (breaker, outlier ejection).
# A bad request, a prompt too long or a refused prompt is the caller's, not the endpoint's.
ENDPOINT_FAULTS: frozenset[ErrorKind] = frozenset(
    {
        ErrorKind.CONNECTION,
        ErrorKind.TIMEOUT,
        ErrorKind.UNAVAILABLE,
        ErrorKind.SERVER_ERROR,
        ErrorKind.PROTOCOL,
        ErrorKind.AUTH,
        ErrorKind.FORBIDDEN,
        ErrorKind.NOT_FOUND,
        ErrorKind.QUOTA_EXCEEDED,
        ErrorKind.UNKNOWN,
    }
)


class BastionError(Exception):
    """Base of every error Bastion raises on purpose."""


class UpstreamError(BastionError):
    """An upstream call failed. `body` is a bounded excerpt, never the request."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        body: str = "",
        retry_after: float | None = None,
        endpoint: str = "",
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.headers: Mapping[str, str] = headers or {}
        self.body = body[:2000]
        self.retry_after = retry_after
        self.endpoint = endpoint

    def __str__(self) -> str:
        where = f"{self.endpoint}: " if self.endpoint else ""
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"{where}{self.kind.value}{status}: {self.message}"


class UpstreamTimeout(UpstreamError):
    """No answer in time. `phase` is connect, headers, first_token, idle or total."""

    def __init__(self, phase: str, after: float, *, endpoint: str = "") -> None:
        super().__init__(
            ErrorKind.TIMEOUT, f"no {phase.replace('_', ' ')} after {after:.3g}s", endpoint=endpoint
        )
        self.phase = phase
        self.after = after


class StreamBroken(UpstreamError):
    """A stream that started well and then failed: cut, malformed, or an in-band error."""


@dataclass(frozen=True, slots=True)
class Classification:
    kind: ErrorKind
    status: int | None = None
    retry_after: float | None = None
    message: str = ""


# --- user rules ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClassificationRule:
    """Maps a failure to a kind when every given condition matches.

    `status` is an exact code or an inclusive (low, high) range; `header` is a
    (name, regex) pair; `body` a regex searched in the response body, case-insensitive.
    """

    kind: ErrorKind
    status: int | tuple[int, int] | None = None
    header: tuple[str, str] | None = None
    body: str | None = None

    def matches(self, status: int | None, headers: Mapping[str, str], body: str) -> bool:
        if self.status is not None:
            if status is None:
                return False
            low, high = (self.status, self.status) if isinstance(self.status, int) else self.status
            if not low <= status <= high:
                return False
        if self.header is not None:
            value = headers.get(self.header[0].lower())
            if value is None or not re.search(self.header[1], value, re.IGNORECASE):
                return False
        return self.body is None or re.search(self.body, body, re.IGNORECASE) is not None


# A predicate rule sees the exception and may name a kind, or None to pass.
Rule = ClassificationRule | Callable[[BaseException], ErrorKind | None]


# --- the built-in table ----------------------------------------------------------------

_CONTEXT_LENGTH = re.compile(
    r"context[_ ]length|maximum context|context window|prompt is too long|too many tokens"
    r"|exceeds? the (?:available |maximum )?context|reduce the length of the messages"
    r"|input token count.*exceeds|context size|maximum number of tokens allowed",
    re.IGNORECASE,
)
_CONTENT_FILTER = re.compile(
    r"content[_ ]filter|content management policy|content[_ ]policy|safety system"
    r"|responsibleaipolicyviolation|flagged as potentially violating",
    re.IGNORECASE,
)
# Not "billing" alone: OpenAI's free-tier rate-limit message links to the billing page.
_QUOTA = re.compile(
    r"insufficient_quota|exceeded your current quota|check your plan and billing"
    r"|credit balance is too low|insufficient (?:credits|balance)"
    r"|reached your specified api usage limits",
    re.IGNORECASE,
)
_PREFILL = re.compile(
    r"prefill|final assistant (?:message|content)|must end with a user message"
    r"|last message must (?:be|have role) (?:a )?user",
    re.IGNORECASE,
)
_OVERLOADED = re.compile(r"overloaded", re.IGNORECASE)

_BY_STATUS: Mapping[int, ErrorKind] = {
    401: ErrorKind.AUTH,
    402: ErrorKind.QUOTA_EXCEEDED,  # payment required: the account, not the request
    403: ErrorKind.FORBIDDEN,
    404: ErrorKind.NOT_FOUND,
    408: ErrorKind.TIMEOUT,
    413: ErrorKind.CONTEXT_LENGTH,
    429: ErrorKind.RATE_LIMITED,
    500: ErrorKind.SERVER_ERROR,
    502: ErrorKind.UNAVAILABLE,
    503: ErrorKind.UNAVAILABLE,
    504: ErrorKind.UNAVAILABLE,
    529: ErrorKind.UNAVAILABLE,  # Anthropic: overloaded
}


def kind_of_response(status: int, body: str = "") -> ErrorKind:
    """The built-in reading of an HTTP error answer."""
    if status == 429:
        return ErrorKind.QUOTA_EXCEEDED if _QUOTA.search(body) else ErrorKind.RATE_LIMITED
    if status in (400, 402) and _QUOTA.search(body):
        # Anthropic answers an empty credit balance with a 400; others use 402.
        return ErrorKind.QUOTA_EXCEEDED
    if 400 <= status < 500 and status not in (401, 403, 408, 429):
        # Context length and content filter arrive as 400 (or 413/422) with wording
        # that differs per provider; the body decides.
        if _CONTEXT_LENGTH.search(body):
            return ErrorKind.CONTEXT_LENGTH
        if _CONTENT_FILTER.search(body):
            return ErrorKind.CONTENT_FILTER
        if _PREFILL.search(body):
            return ErrorKind.PREFILL_REJECTED
    if status == 500 and _OVERLOADED.search(body):
        return ErrorKind.UNAVAILABLE
    kind = _BY_STATUS.get(status)
    if kind is not None:
        return kind
    if status >= 500:
        return ErrorKind.SERVER_ERROR
    return ErrorKind.INVALID_REQUEST


def kind_of_message(message: str) -> ErrorKind:
    """The built-in reading of an in-band error event, which carries no status."""
    if _CONTEXT_LENGTH.search(message):
        return ErrorKind.CONTEXT_LENGTH
    if _CONTENT_FILTER.search(message):
        return ErrorKind.CONTENT_FILTER
    if _QUOTA.search(message):
        return ErrorKind.QUOTA_EXCEEDED
    if _OVERLOADED.search(message) or "unavailable" in message.lower():
        return ErrorKind.UNAVAILABLE
    if "rate limit" in message.lower():
        return ErrorKind.RATE_LIMITED
    return ErrorKind.SERVER_ERROR


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait, from `retry-after-ms`, `x-ms-retry-after-ms` or `retry-after`.

    `retry-after` may be seconds or an HTTP-date; `now` (epoch seconds) is needed for
    the latter. Headers are looked up lower-case. Negative or absurd values are dropped.
    """
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        raw = headers.get(name)
        if raw is not None:
            try:
                value = float(raw) / 1000.0
            except ValueError:
                continue
            if _sane(value):
                return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        value = float(raw)
    except ValueError:
        if now is None:
            return None
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, when.timestamp() - now)
    return value if _sane(value) else None


def _sane(seconds: float) -> bool:
    # "inf" and "nan" parse as floats; neither is a wait anyone meant.
    return math.isfinite(seconds) and seconds >= 0


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def classify(
    error: BaseException | None = None,
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    body: str = "",
    rules: tuple[Rule, ...] = (),
    now: float | None = None,
) -> Classification:
    """Classify an exception, or a raw HTTP answer given as status/headers/body.

    User `rules` are tried first, in order; the first to match wins. Then an
    `UpstreamError` keeps the kind its provider gave it, and foreign exceptions are
    read by type: timeouts, then connection errors; anything else is UNKNOWN.
    """
    if isinstance(error, UpstreamError):
        status = error.status if status is None else status
        headers = error.headers if headers is None else headers
        body = body or error.body
    hdrs = lower_headers(headers) if headers else {}
    retry_after = parse_retry_after(hdrs, now) if hdrs else None
    if isinstance(error, UpstreamError) and error.retry_after is not None:
        retry_after = error.retry_after
    message = str(error) if error is not None else body[:200]

    for rule in rules:
        if isinstance(rule, ClassificationRule):
            if rule.matches(status, hdrs, body):
                return Classification(rule.kind, status, retry_after, message)
        elif error is not None:
            named = rule(error)
            if named is not None:
                return Classification(named, status, retry_after, message)

    if isinstance(error, UpstreamError):
        kind = error.kind
    elif isinstance(error, TimeoutError):
        kind = ErrorKind.TIMEOUT
    elif isinstance(error, ConnectionError | OSError):
        kind = ErrorKind.CONNECTION
    elif error is None and status is not None:
        kind = kind_of_response(status, body)
    else:
        kind = ErrorKind.UNKNOWN
    return Classification(kind, status, retry_after, message)
