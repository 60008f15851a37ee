"""The agent turn of `bench.agent_turn`, scripted for other agent frameworks.

Each builder returns a `Turn` (one agent run: prompt in, final text out) or, when the
framework is not installed, the reason its row is left out. Neither framework is a
dependency of Bastion; `pip install -e '.[bench]'` installs the versions measured.

Both are scripted the same way as Bastion's `ScriptedModel` in the benchmark: when the
last message is not a tool result, answer with one call of `lookup_order`; otherwise
answer with the final text. The scripted responses carry their token usage, as a real
provider's do, so that neither framework spends time estimating it.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Awaitable, Callable
from typing import Any

Turn = Callable[[], Awaitable[str]]
# A tool the benchmark gives every framework: an async function of typed arguments.
ToolFn = Callable[..., Awaitable[dict[str, Any]]]


def _missing(package: str, version: str) -> str | None:
    try:
        importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return f"{package} not installed (`.venv/bin/pip install '{package}=={version}'`)"
    return None


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def pydantic_ai_turn(
    tool_fn: ToolFn, *, instructions: str, prompt: str, arguments: str, final: str
) -> Turn | str:
    """pydantic-ai's `Agent.run` over a `FunctionModel` (its public test double)."""
    absent = _missing("pydantic-ai-slim", "2.68.*")
    if absent:
        return absent
    from pydantic_ai import Agent
    from pydantic_ai.messages import (
        ModelMessage,
        ModelRequest,
        ModelResponse,
        TextPart,
        ToolCallPart,
        ToolReturnPart,
    )
    from pydantic_ai.models.function import AgentInfo, FunctionModel
    from pydantic_ai.usage import RequestUsage

    async def script(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        last = messages[-1]
        if isinstance(last, ModelRequest) and any(
            isinstance(part, ToolReturnPart) for part in last.parts
        ):
            return ModelResponse(
                [TextPart(final)], usage=RequestUsage(input_tokens=40, output_tokens=12)
            )
        call = ToolCallPart(tool_fn.__name__, arguments, tool_call_id="call_1")
        return ModelResponse([call], usage=RequestUsage(input_tokens=30, output_tokens=8))

    # A name given up front: otherwise every run inspects the caller's frames for one.
    agent = Agent(FunctionModel(script), instructions=instructions, tools=[tool_fn], name="bench")

    async def turn() -> str:
        result = await agent.run(prompt)
        return result.output

    return turn


def openai_agents_turn(
    tool_fn: ToolFn, *, instructions: str, prompt: str, arguments: str, final: str
) -> Turn | str:
    """openai-agents' `Runner.run` over a `Model` that answers from the script.

    Tracing is turned off: it is on by default and exports to OpenAI, while the other
    rows run without hooks or exporters."""
    absent = _missing("openai-agents", "0.24.*")
    if absent:
        return absent
    from agents import Agent, Model, ModelResponse, RunConfig, Runner, Usage, function_tool
    from openai.types.responses import (
        ResponseFunctionToolCall,
        ResponseOutputMessage,
        ResponseOutputText,
    )

    class ScriptedAgentsModel(Model):
        async def get_response(
            self,
            system_instructions: str | None,
            input: str | list[Any],
            model_settings: Any,
            tools: list[Any],
            output_schema: Any,
            handoffs: list[Any],
            tracing: Any,
            *,
            previous_response_id: str | None,
            conversation_id: str | None,
            prompt: Any,
        ) -> ModelResponse:
            last = input[-1] if isinstance(input, list) and input else None
            if isinstance(last, dict) and last.get("type") == "function_call_output":
                text = ResponseOutputText(type="output_text", text=final, annotations=[])
                message = ResponseOutputMessage(
                    id="msg_1", type="message", role="assistant", status="completed",
                    content=[text],
                )  # fmt: skip
                return ModelResponse([message], Usage(1, 40, output_tokens=12), None)
            call = ResponseFunctionToolCall(
                type="function_call", call_id="call_1", name=tool_fn.__name__,
                arguments=arguments, id="fc_1", status="completed",
            )  # fmt: skip
            return ModelResponse([call], Usage(1, 30, output_tokens=8), None)

        def stream_response(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError("the benchmark does not stream")

    agent = Agent(
        name="bench",
        instructions=instructions,
        model=ScriptedAgentsModel(),
        tools=[function_tool(tool_fn)],
    )
    config = RunConfig(tracing_disabled=True)

    async def turn() -> str:
        result = await Runner.run(agent, prompt, run_config=config)
        return str(result.final_output)

    return turn
