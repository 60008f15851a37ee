"""The config's errors: one that names where (file, line, field), and one a validator
raises to say which entry below it is wrong."""

from __future__ import annotations

Loc = tuple[str | int, ...]


class ConfigError(ValueError):
    """A config that cannot be used. The message names the file, line and field; it
    never contains the value of a secret."""

    def __init__(
        self, message: str, *, source: str = "", line: int | None = None, field: str | None = None
    ) -> None:
        where = source + (f", line {line}" if line is not None else "")
        super().__init__(f"{where}: {message}" if where else message)
        self.source = source
        self.line = line
        # The field at fault (`endpoints[0].api_key`), when the error is about one.
        self.field = field
        # The message without the file and line: what an HTTP caller, who sent the
        # body and knows which it was, is told.
        self.detail = message


class FieldError(ValueError):
    """Raised by a section's validator about one of its entries: `loc` is where that
    entry is, below the section (`("endpoints", 2, "id")`), so that the error points
    at its line rather than at the section's."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = loc


def dotted(loc: Loc) -> str:
    """`("endpoints", 0, "timeouts")` as `endpoints[0].timeouts`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"
