"""Router-wide settings; defined beside the config that builds them."""

from bastion.config.options import EndpointPolicy, RouterOptions
from bastion.resilience.budget import BudgetConfig

__all__ = ["BudgetConfig", "EndpointPolicy", "RouterOptions"]
