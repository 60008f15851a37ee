"""Model groups; defined beside the config that builds them."""

from bastion.config.groups import (
    Degraded,
    DegradedHandler,
    Hedge,
    ModelGroup,
    RetryOverrides,
    Strategy,
    Target,
)

__all__ = [
    "Degraded",
    "DegradedHandler",
    "Hedge",
    "ModelGroup",
    "RetryOverrides",
    "Strategy",
    "Target",
]
