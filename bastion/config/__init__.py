"""Configuration: YAML → validated, frozen settings. Knows nothing of what uses them."""

from bastion.config.loader import ConfigError, load_config
from bastion.config.schema import BastionConfig, EndpointConfig, GroupConfig

__all__ = ["BastionConfig", "ConfigError", "EndpointConfig", "GroupConfig", "load_config"]
