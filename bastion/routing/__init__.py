"""Model specs, groups and the Router: plan, attempt loop, stream failover."""

from bastion.routing.errors import FailoverError, NoTargetAvailable, UpstreamDetail
from bastion.routing.groups import Degraded, Hedge, ModelGroup, Target
from bastion.routing.options import BudgetConfig, EndpointPolicy, RouterOptions
from bastion.routing.router import Router
from bastion.routing.spec import ModelSpec, UnknownModel
from bastion.routing.status import EndpointStatus
from bastion.routing.streaming import RouterStream

__all__ = [
    "BudgetConfig",
    "Degraded",
    "EndpointPolicy",
    "EndpointStatus",
    "FailoverError",
    "Hedge",
    "ModelGroup",
    "ModelSpec",
    "NoTargetAvailable",
    "Router",
    "RouterOptions",
    "RouterStream",
    "Target",
    "UnknownModel",
    "UpstreamDetail",
]
