"""Tools: typed Python functions an agent's model may call.

    @tool(timeout=5.0)
    async def weather(city: str, ctx: ToolContext) -> dict[str, Any]:
        '''The current weather in a city.

        Args:
            city: The city's name, e.g. "Paris".
        '''

The JSON schema shown to the model comes from the type hints and the docstring (see
`signature`). Arguments from the model are validated before the function runs; a
`RuntimeContext` or `ToolContext` parameter is injected. Nothing a tool does can crash
the run: invalid arguments, a timeout or an exception become a tool message that goes
back to the model, so it can correct itself or answer without the tool.

Each call gets `ToolContext.idempotency_key` = `"{run_id}:{step}:{position}"` (the
model step that asked for the call, and the call's place in that step's list): stable
across retries of the call and across a resumed run, unique within a run, so a tool
with side effects can deduplicate.

Sync functions run in a worker thread, so they neither block the event loop nor
escape their timeout (a thread cannot be stopped: on timeout the run moves on and
the thread finishes in the background).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, overload

import orjson
from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from bastion.agents.errors import describe_validation_error
from bastion.agents.signature import read_signature
from bastion.types import RuntimeContext, ToolSpec

DEFAULT_TIMEOUT = 30.0
_MAX_ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a tool may know about the call it serves. `attempt` counts the tool's
    own retries (0 for the first try); the idempotency key does not change with it."""

    run_id: str
    step: int
    call_id: str
    tool: str
    idempotency_key: str
    context: RuntimeContext
    agent: str = ""
    thread_id: str | None = None
    resource_id: str | None = None
    attempt: int = 0


class ToolError(Exception):
    """Raise from a tool to send exactly this message back to the model."""


@dataclass(frozen=True, slots=True)
class ToolReturn:
    """How one call went: `text` is what the model reads; `invalid` marks arguments
    that did not validate (or an unknown tool), which count against the run's bound."""

    text: str
    error: bool = False
    invalid: bool = False


class Tool:
    """A function the model may call, with its schema and limits. Calling the tool
    object calls the function itself, so decorated functions stay usable as such."""

    __slots__ = (
        "_async",
        "_fn",
        "_injected",
        "_model",
        "description",
        "name",
        "parameters",
        "retries",
        "spec",
        "timeout",
    )

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        retries: int = 0,
    ) -> None:
        self.name = name or fn.__name__
        if timeout is not None and not timeout > 0:
            raise ValueError(f"tool {self.name!r}: timeout must be positive, got {timeout!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"tool {self.name!r}: retries must be a non-negative integer")
        sig = read_signature(fn, self.name, (RuntimeContext, ToolContext))
        self.description = description if description is not None else sig.description
        self.parameters = sig.schema
        self.timeout = timeout
        self.retries = retries
        self.spec = ToolSpec(self.name, self.description, self.parameters)
        self._fn = fn
        self._async = inspect.iscoroutinefunction(fn)
        self._model = sig.model
        self._injected = sig.injected

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"

    def parse_arguments(self, arguments: str) -> dict[str, Any]:
        """The validated arguments; `ValidationError` names each bad field."""
        # Some providers send "" for a call without arguments.
        parsed = self._model.model_validate_json(arguments or "{}")
        return dict(parsed.__dict__)

    async def execute(self, arguments: str, ctx: ToolContext) -> ToolReturn:
        """Validate, run under the timeout (retrying up to `retries` times), and turn
        whatever happened into the message the model will read. Never raises, except
        on cancellation."""
        try:
            kwargs = self.parse_arguments(arguments)
        except ValidationError as exc:
            detail = describe_validation_error(exc)
            return ToolReturn(f"invalid arguments for tool '{self.name}': {detail}", True, True)
        for name, kind in self._injected:
            kwargs[name] = ctx if kind is ToolContext else ctx.context
        attempt = 0
        while True:
            try:
                result = await self._run(kwargs)
                return ToolReturn(to_text(result))
            except _TimedOut:
                failure = f"tool '{self.name}' timed out after {self.timeout:g}s"
            except ToolError as exc:
                failure = str(exc)[:_MAX_ERROR_CHARS]
            except Exception as exc:
                # The type and message only: no traceback, no arguments, no locals.
                failure = f"tool '{self.name}' failed: {type(exc).__name__}: {exc}"
                failure = failure[:_MAX_ERROR_CHARS]
            if attempt >= self.retries:
                return ToolReturn(failure, True)
            attempt += 1
            if self._injected:
                retry_ctx = _with_attempt(ctx, attempt)
                for name, kind in self._injected:
                    if kind is ToolContext:
                        kwargs[name] = retry_ctx

    async def _run(self, kwargs: dict[str, Any]) -> Any:
        if self._async:
            call = self._fn(**kwargs)
        else:
            call = asyncio.to_thread(functools.partial(self._fn, **kwargs))
        if self.timeout is None:
            return await call
        try:
            async with asyncio.timeout(self.timeout) as scope:
                return await call
        except TimeoutError:
            # Only our own deadline is "timed out"; a TimeoutError the tool raised
            # itself (its HTTP client's, say) is the tool failing.
            if scope.expired():
                raise _TimedOut from None
            raise


class _TimedOut(Exception):
    pass


def _with_attempt(ctx: ToolContext, attempt: int) -> ToolContext:
    return ToolContext(
        ctx.run_id,
        ctx.step,
        ctx.call_id,
        ctx.tool,
        ctx.idempotency_key,
        ctx.context,
        ctx.agent,
        ctx.thread_id,
        ctx.resource_id,
        attempt,
    )


def to_text(value: Any) -> str:
    """What the model reads for a tool's return value: strings as they are, anything
    else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return orjson.dumps(to_jsonable_python(value, fallback=str)).decode()


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    retries: int = 0,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    retries: int = 0,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a `Tool` of a typed function, as `@tool` or `@tool(name=..., timeout=...)`.

    `timeout` bounds each try in seconds (None: no bound); `retries` re-runs the
    function that many times after an exception or a timeout (same idempotency key)
    before the error goes back to the model."""

    def wrap(f: Callable[..., Any]) -> Tool:
        return Tool(f, name=name, description=description, timeout=timeout, retries=retries)

    return wrap(fn) if fn is not None else wrap


def as_tool(item: Tool | Callable[..., Any]) -> Tool:
    """A `Tool` as it is; a plain function made into one with the defaults."""
    return item if isinstance(item, Tool) else Tool(item)
