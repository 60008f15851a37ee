"""Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.

Every error the gateway answers with goes through here, so every client that knows
OpenAI's errors (the SDKs, LangChain, curl users) reads ours too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson
import structlog
from aiohttp import web

from bastion.resilience.errors import ErrorKind
from bastion.routing.errors import FailoverError, NoTargetAvailable
from bastion.routing.spec import UnknownModel

_log = structlog.get_logger("bastion.server")


class ApiError(Exception):
    """An error answered in OpenAI's shape. `param` names the offending field."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.retry_after = retry_after
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.type,
            "param": self.param,
            "code": self.code,
        }
        error.update(self.extra)
        return {"error": error}

    def response(self, headers: Mapping[str, str] | None = None) -> web.Response:
        out = dict(headers or {})
        if self.retry_after is not None:
            out["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return web.Response(
            body=orjson.dumps(self.body()),
            status=self.status,
            content_type="application/json",
            headers=out,
        )


def invalid(param: str, message: str) -> ApiError:
    return ApiError(400, f"{param}: {message}", param=param, code="invalid_value")


# What the caller sees when the router gave up, by the kind that decided it.
_BY_KIND: Mapping[ErrorKind, tuple[int, str, str]] = {
    ErrorKind.INVALID_REQUEST: (400, "invalid_request_error", "invalid_request"),
    ErrorKind.CONTEXT_LENGTH: (400, "invalid_request_error", "context_length_exceeded"),
    ErrorKind.CONTENT_FILTER: (400, "invalid_request_error", "content_filter"),
    ErrorKind.RATE_LIMITED: (429, "rate_limit_error", "upstream_rate_limited"),
    ErrorKind.QUOTA_EXCEEDED: (429, "rate_limit_error", "upstream_quota_exceeded"),
    ErrorKind.TIMEOUT: (504, "upstream_error", "upstream_timeout"),
}


def from_failover(error: FailoverError, *, retry_after: float | None) -> ApiError:
    """Every attempt failed: the status follows the deciding kind; the body lists the
    attempts (endpoint, kind, status, time) so the caller can see what happened."""
    status, kind_type, code = _BY_KIND.get(error.kind, (502, "upstream_error", "upstream_failed"))
    attempts = [
        {
            "endpoint": a.endpoint,
            "model": a.model,
            "kind": a.kind,
            "status": a.status,
            "duration_ms": round(a.duration * 1000, 1),
        }
        for a in error.attempts
    ]
    # A request refused as the caller's fault: the upstream's words, so it can be fixed.
    detail = error.detail
    return ApiError(
        status,
        detail.message if detail is not None else error.message,
        type=kind_type,
        param=detail.param if detail is not None else None,
        code=detail.code if detail is not None and detail.code else code,
        retry_after=retry_after if status in (429, 502, 503, 504) else None,
        extra={"attempts": attempts},
    )


def from_exception(error: Exception, *, retry_after: float | None = None) -> ApiError:
    if isinstance(error, ApiError):
        return error
    if isinstance(error, UnknownModel):
        return ApiError(
            404,
            f"The model {error.name!r} does not exist",
            param="model",
            code="model_not_found",
        )
    if isinstance(error, FailoverError):
        return from_failover(error, retry_after=retry_after)
    if isinstance(error, NoTargetAvailable):
        return ApiError(
            503,
            str(error),
            type="upstream_error",
            code="no_endpoint_available",
            retry_after=retry_after if retry_after is not None else 1.0,
        )
    _log.error("unexpected error while serving a request", exc_info=error)
    return ApiError(500, "internal error", type="server_error", code="internal_error")
