"""What an agent run raises when it cannot finish: each error names its bound.

    BastionError
      AgentError                 kind: a short code, also the `Error` event's kind
        StepLimitReached         every model step was used without a final answer
        ToolArgumentsInvalid     the model kept sending arguments that do not validate
        OutputInvalid            the final answer did not match the output schema
        MissingContext           the instructions name context values the run lacks

Router failures (`FailoverError`, `NoTargetAvailable`) reach the caller unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

from bastion.resilience.errors import BastionError


class AgentError(BastionError):
    """Base of the errors an agent run raises on purpose. `run_id` names the run."""

    kind = "agent_error"

    def __init__(self, message: str, *, run_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.run_id = run_id


class StepLimitReached(AgentError):
    """The run used `limit` model steps and the model still wanted to go on."""

    kind = "step_limit"

    def __init__(self, limit: int, model_steps: int, tool_calls: int, *, run_id: str = "") -> None:
        super().__init__(
            f"step limit reached: max_steps={limit} model steps were used without a final "
            f"answer ({model_steps} model calls and {tool_calls} tool calls taken)",
            run_id=run_id,
        )
        self.limit = limit
        self.model_steps = model_steps
        self.tool_calls = tool_calls


class ToolArgumentsInvalid(AgentError):
    """The model sent invalid tool arguments in more than `limit` rounds."""

    kind = "tool_arguments"

    def __init__(self, limit: int, last_error: str, *, run_id: str = "") -> None:
        super().__init__(
            f"the model sent invalid tool arguments in more than {limit} rounds "
            f"(max_invalid_tool_rounds={limit}); last: {last_error}",
            run_id=run_id,
        )
        self.limit = limit
        self.last_error = last_error


class OutputInvalid(AgentError):
    """The final answer did not validate against the output schema, even after the
    repair attempt. `text` is the last answer, `errors` what was wrong with it."""

    kind = "output_invalid"

    def __init__(self, errors: str, text: str, repairs: int, *, run_id: str = "") -> None:
        super().__init__(
            f"the final answer does not match the output schema after {repairs} repair "
            f"attempt{'s' if repairs != 1 else ''}: {errors}",
            run_id=run_id,
        )
        self.errors = errors
        self.text = text
        self.repairs = repairs


class MissingContext(AgentError):
    """The instructions name runtime-context values (`keys`) that the run was not
    given and that have no default; raised before the run starts, nothing recorded."""

    kind = "missing_context"

    def __init__(self, keys: Sequence[str], *, agent: str = "", run_id: str = "") -> None:
        names = ", ".join(repr(k) for k in keys)
        plural = "s" if len(keys) != 1 else ""
        who = f"agent {agent!r} needs" if agent else "the instructions need"
        super().__init__(
            f"{who} the context value{plural} {names}, which the run was not given",
            run_id=run_id,
        )
        self.agent = agent
        self.keys = tuple(keys)


def describe_validation_error(exc: ValidationError, *, limit: int = 5) -> str:
    """One line per problem, each naming its field: what a model can act on."""
    parts: list[str] = []
    for error in exc.errors(include_url=False, include_context=False)[:limit]:
        loc = ".".join(str(p) for p in error["loc"])
        if error["type"] == "json_invalid":
            parts.append(f"not valid JSON ({error['msg']})")
        elif loc:
            parts.append(f"field '{loc}': {error['msg']}")
        else:
            parts.append(error["msg"])
    extra = exc.error_count() - limit
    if extra > 0:
        parts.append(f"and {extra} more")
    return "; ".join(parts)
