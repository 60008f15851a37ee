"""The agents API's bodies, as types.

`RunRequest` validates a run body (`codec.parse_run`) and documents it; the answers
are `TypedDict`s the handlers build as plain dicts. The OpenAPI document is generated
from all of them (`common.components`). Messages are the chat API's (its hand-written
`ChatMessage`), since one parser reads both; so is the usage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from bastion.server.common import ErrorFields, Refusal, component

MAX_ID = 256
ID_RULE = f"must be a string of 1 to {MAX_ID} printable characters"


def _printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError(ID_RULE)
    return value


# A thread or resource id.
Identifier = Annotated[str, Field(min_length=1, max_length=MAX_ID), AfterValidator(_printable)]
# A run id goes into tools' idempotency keys ("{run_id}:{step}:{position}"), so no colon.
RunId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")]
ChatMessage = Annotated[dict[str, Any], component("ChatMessage")]
Usage = Annotated[dict[str, Any], component("Usage")]
JsonObject = Mapping[str, Any]


class RunRequest(BaseModel):
    """Either `prompt` or `messages`. `thread_id` needs `resource_id` for agents with
    memory, unless the key is bound to one resource or sends a user's token."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        # One of the two, where a null counts as absent (as the handlers read it).
        json_schema_extra={
            "oneOf": [
                {"required": ["prompt"], "properties": {"prompt": {"type": "string"}}},
                {"required": ["messages"], "properties": {"messages": {"type": "array"}}},
            ]
        },
    )

    prompt: Annotated[
        Annotated[str, Field(min_length=1)] | None,
        Refusal("must be a non-empty string"),
        Field(description="One user message."),
    ] = None
    # Items are read by the chat parser (`openai.codec.read_message`), which names the
    # field at fault the way the chat API does.
    messages: Annotated[
        Annotated[list[Annotated[Any, component("ChatMessage")]], Field(min_length=1)] | None,
        Refusal("is required (a non-empty array), or give a prompt"),
    ] = None
    context: Annotated[
        dict[str, Any] | None,
        Refusal("must be an object"),
        Field(
            description="Runtime context for the model selection, the instructions' "
            "`{key}` placeholders and the tools; over the `x-bastion-context-<key>` headers."
        ),
    ] = None
    run_id: Annotated[
        RunId | None,
        Refusal("must be 1 to 128 characters of A-Z a-z 0-9 _ . -"),
        Field(description="Names the run; new runs only."),
    ] = None
    thread_id: Annotated[
        Identifier | None,
        Refusal(ID_RULE),
        Field(
            description="Continue this thread (created on first use); its history comes "
            "first and the run's messages are added when it succeeds."
        ),
    ] = None
    resource_id: Annotated[
        Identifier | None,
        Refusal(ID_RULE),
        Field(
            description="Who owns the thread (a user, a tenant); within the key's binding. "
            "Filled in for a key bound to one resource or to a user (`x-bastion-user`)."
        ),
    ] = None


class Step(TypedDict):
    """A model or tool call of a run."""

    index: int
    kind: Literal["model", "tool"]
    name: str
    status: Literal["ok", "error"]
    input: JsonObject
    output: JsonObject
    started_at: float
    ended_at: float


class AgentResult(TypedDict):
    """What a run answered."""

    text: str
    messages: Annotated[list[ChatMessage], Field(description="The run's new messages.")]
    usage: Usage
    steps: list[Step]
    run_id: str
    output: Annotated[Any, Field(description="The structured answer, for agents with a schema.")]
    refused: Annotated[str | None, Field(description="A processor's refusal.")]
    degraded: Annotated[bool, Field(description="The group's degraded answer.")]


class ModelEntry(TypedDict):
    model: str
    retries: int | None


class ToolInfo(TypedDict):
    name: str
    description: str
    parameters: JsonObject


class AgentInfo(TypedDict):
    name: str
    description: str
    model: str | list[ModelEntry]
    tools: list[ToolInfo]
    memory: bool
    max_steps: int


class AgentList(TypedDict):
    """The agents a key may use."""

    object: Literal["list"]
    data: list[AgentInfo]


class Thread(TypedDict):
    """A conversation kept in memory, owned by one resource."""

    id: str
    resource_id: str
    version: Annotated[int, Field(description="Turns committed so far.")]
    created_at: float
    updated_at: float
    metadata: JsonObject


class ThreadMessages(Thread):
    """A thread and its messages."""

    messages: list[ChatMessage]


class ThreadList(TypedDict):
    """A resource's threads, most recently updated first."""

    object: Literal["list"]
    data: list[Thread]


class Deleted(TypedDict):
    id: str
    deleted: Literal[True]


class Run(TypedDict):
    """A run of an agent and its steps."""

    id: str
    agent: str
    thread_id: str | None
    resource_id: str | None
    status: Literal["running", "ok", "error"]
    started_at: float
    ended_at: float | None
    error: str | None
    steps: list[Step]


# --- the events of a run, streamed (SSE `data`, WebSocket messages) -------------------


class TextDeltaEvent(TypedDict):
    """`text_delta`: a piece of the answer's text."""

    text: str


class ToolCallEvent(TypedDict):
    """`tool_call`: the model called a tool (`arguments` is JSON text)."""

    id: str
    name: str
    arguments: str
    step: int


class ToolResultEvent(TypedDict):
    """`tool_result`: a tool's answer, or the error the model was sent instead."""

    call_id: str
    name: str
    result: str | None
    error: str | None
    step: int


class StepFinishEvent(TypedDict):
    """`step_finish`: a step is done; tool steps have no endpoint, model or usage."""

    index: int
    kind: Literal["model", "tool"]
    name: str
    status: Literal["ok", "error"]
    endpoint: str
    model: str
    usage: Usage


class ModelSwitchEvent(TypedDict):
    """`model_switch`: a model step is served by another endpoint than the last one."""

    from_endpoint: str
    to_endpoint: str
    step: int


class ErrorEvent(ErrorFields):
    """`error`: the run failed, with the fields its plain HTTP error would have had;
    nothing follows."""

    kind: str
    status: int


# Each event's name and the type of its fields; `finish` carries the `AgentResult`.
EVENTS: dict[str, type[Any]] = {
    "text_delta": TextDeltaEvent,
    "tool_call": ToolCallEvent,
    "tool_result": ToolResultEvent,
    "step_finish": StepFinishEvent,
    "model_switch": ModelSwitchEvent,
    "finish": AgentResult,
    "error": ErrorEvent,
}

TYPES = (
    RunRequest,
    Step,
    AgentResult,
    AgentList,
    Thread,
    ThreadList,
    ThreadMessages,
    Deleted,
    Run,
    *EVENTS.values(),
)
