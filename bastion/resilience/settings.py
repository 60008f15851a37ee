"""What every settings type shares: durations with units, and the strictness of them.

Every value has bounds that say what it means: a duration is finite, and at most a
day (`LongDuration`, for how long data is kept: ten years); a count (`Count`) is an
integer, never `2.0` or `"2"`; a flag (`Flag`) is `true` or `false`, never `"yes"`; no
float is NaN or infinite.

Settings types are pydantic dataclasses (`@settings`):
the type a component reads at run time is the one the YAML config is validated into,
so each default and each check is written once, beside the field. Construction
validates; reading an attribute is a plain slot read, as with any dataclass. Types that
code builds per request stay standard dataclasses and are validated only when they
come through the config.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Annotated, Any, TypeVar, dataclass_transform

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict
from pydantic.dataclasses import dataclass as pydantic_dataclass

T = TypeVar("T")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
DAY = 86400.0


def _duration(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '2s'")
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:  # an int past any float: out of range, as the bound says
            raise ValueError("the duration is out of range") from None
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"not a duration: {value!r} (use e.g. 250ms, 2s, 5m, 1h)")
        return float(match.group(1)) * _UNITS[match.group(2)]
    return value


# Nothing Bastion waits for, backs off for or ejects for is sensibly longer than a day.
Duration = Annotated[float, BeforeValidator(_duration), Field(ge=0, le=DAY, allow_inf_nan=False)]
PositiveDuration = Annotated[
    float, BeforeValidator(_duration), Field(gt=0, le=DAY, allow_inf_nan=False)
]
LongDuration = Annotated[
    float, BeforeValidator(_duration), Field(gt=0, le=3650 * DAY, allow_inf_nan=False)
]
# Give each its range beside the field: Annotated[Count, Field(ge=1, le=100)].
Count = Annotated[int, Strict()]
Flag = Annotated[bool, Strict()]

# Unknown keys are errors, so that a typo fails at load time. Errors never quote the
# input: it may hold an API key (an endpoint's, a client key).
STRICT = ConfigDict(extra="forbid", hide_input_in_errors=True, allow_inf_nan=False)


class Frozen(BaseModel):
    """A config section that only the config reads: immutable, unknown keys are errors."""

    model_config = ConfigDict(**STRICT, frozen=True)


@dataclass_transform(frozen_default=True, field_specifiers=(Field, dataclasses.field))
def settings(cls: type[T]) -> type[T]:
    """Make `cls` a settings type: a frozen, slotted pydantic dataclass, strict on keys."""
    made: type[T] = pydantic_dataclass(frozen=True, slots=True, config=STRICT)(cls)  # type: ignore[assignment]
    return made
