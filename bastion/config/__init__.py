"""Configuration: YAML → validated, frozen settings. Knows nothing of what uses them."""

from bastion.config.errors import ConfigError
from bastion.config.loader import load_config
from bastion.config.schema import BastionConfig, EndpointConfig, GroupConfig
from bastion.config.trust import ConfigTrust

__all__ = [
    "BastionConfig",
    "ConfigError",
    "ConfigTrust",
    "EndpointConfig",
    "GroupConfig",
    "load_config",
]
