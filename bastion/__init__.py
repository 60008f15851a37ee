"""Bastion keeps AI applications answering when model providers fail.

The public surface; everything else may change between releases.
"""

from bastion.config import ConfigError
from bastion.models import Endpoint, Fail, HealthCheck, Reply, ScriptedModel, Timeouts
from bastion.models.base import ChatModel
from bastion.observability.events import Event, EventBus
from bastion.observability.logging import EventLogger
from bastion.resilience.errors import (
    BastionError,
    ClassificationRule,
    ErrorKind,
    UpstreamError,
    classify,
)
from bastion.resilience.retry import Action, Decision, KindPolicy, RetryPolicy
from bastion.routing import (
    Degraded,
    FailoverError,
    Hedge,
    ModelGroup,
    NoTargetAvailable,
    Router,
    RouterOptions,
    RouterStream,
    Target,
    UnknownModel,
)
from bastion.types import (
    ChatRequest,
    ChatResponse,
    Message,
    RuntimeContext,
    StreamError,
    StreamFinish,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    Usage,
    assistant,
    chat,
    system,
    user,
)

__all__ = [
    "Action",
    "BastionError",
    "ChatModel",
    "ChatRequest",
    "ChatResponse",
    "ClassificationRule",
    "ConfigError",
    "Decision",
    "Degraded",
    "Endpoint",
    "ErrorKind",
    "Event",
    "EventBus",
    "EventLogger",
    "Fail",
    "FailoverError",
    "HealthCheck",
    "Hedge",
    "KindPolicy",
    "Message",
    "ModelGroup",
    "NoTargetAvailable",
    "Reply",
    "RetryPolicy",
    "Router",
    "RouterOptions",
    "RouterStream",
    "RuntimeContext",
    "ScriptedModel",
    "StreamError",
    "StreamFinish",
    "Target",
    "TextDelta",
    "Timeouts",
    "ToolCall",
    "ToolCallDelta",
    "ToolSpec",
    "UnknownModel",
    "UpstreamError",
    "Usage",
    "assistant",
    "chat",
    "classify",
    "system",
    "user",
]
