"""The `tracing:` section of the config: OpenTelemetry traces, off by default."""

from __future__ import annotations

import importlib.util
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from bastion.resilience.settings import Flag, Frozen


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


_OTEL_HINT = "pip install 'bastion[otel]'"


class TracingSettings(Frozen):
    """OpenTelemetry traces (GenAI semantic conventions); off unless `enabled`.

    `exporter`: `otlp` (OTLP over HTTP to `endpoint`, or the OTEL_EXPORTER_OTLP_*
    environment variables when absent), `console`, or `none` (context is propagated,
    nothing is sent). `sample_ratio` applies to traces that start at Bastion; a
    caller's `traceparent` decides for the traces it continues."""

    enabled: Flag = False
    service_name: str = Field(default="bastion", min_length=1)
    exporter: Literal["otlp", "console", "none"] = "otlp"
    endpoint: str | None = Field(default=None, pattern=r"^https?://\S+$")
    sample_ratio: float = Field(default=1.0, ge=0, le=1)

    # The packages are checked here, so that `bastion check-config` tells of a missing
    # extra with the field that needs it, rather than the server failing at start.
    @field_validator("enabled")
    @classmethod
    def _sdk_installed(cls, value: bool) -> bool:
        if value and not _installed("opentelemetry.sdk.trace"):
            raise ValueError(f"tracing needs the OpenTelemetry SDK: {_OTEL_HINT}")
        return value

    @field_validator("exporter")
    @classmethod
    def _exporter_installed(cls, value: str, info: ValidationInfo) -> str:
        wanted = info.data.get("enabled", False) and value == "otlp"
        if wanted and not _installed("opentelemetry.exporter.otlp.proto.http"):
            raise ValueError(f"the otlp exporter needs its package: {_OTEL_HINT}")
        return value
