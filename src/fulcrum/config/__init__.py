# Fulcrum's configuration: models (validation only), units, loading from YAML + environment,
# and ConfigError. Provisioning (building runtime objects from a Config) lives elsewhere.
"""Configuration: ``load_config()`` → a validated ``Config`` or a ``ConfigError``."""
from fulcrum.config.errors import ConfigError, format_problem
from fulcrum.config.load import CONFIG_ENV, DEFAULT_PATH, ENV_PREFIX, load_config, load_config_from_dict
from fulcrum.config.model import (
    AdminConfig,
    BackendConfig,
    Buffers,
    Config,
    Limits,
    LogConfig,
    PoolConfig,
    RouteConfig,
    Timeouts,
    UpstreamConfig,
    cross_check,
    parse_host_port,
)
from fulcrum.config.units import Duration, Size, parse_duration, parse_size

__all__ = [
    "AdminConfig", "BackendConfig", "Buffers", "CONFIG_ENV", "Config", "ConfigError", "DEFAULT_PATH",
    "Duration", "ENV_PREFIX", "Limits", "LogConfig", "PoolConfig", "RouteConfig", "Size", "Timeouts",
    "UpstreamConfig", "cross_check", "format_problem", "load_config", "load_config_from_dict",
    "parse_duration", "parse_host_port", "parse_size",
]
