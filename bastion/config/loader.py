"""Reading a config: YAML with line numbers, `${ENV}` secrets, errors that say where.

ConfigError: bastion.yaml, line 7, endpoints[0].timeouts.connect: not a duration: 'fast'
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bastion.config.schema import BastionConfig

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Loc = tuple[str | int, ...]


class ConfigError(ValueError):
    """A config that cannot be used. The message names the file, line and field; it
    never contains the value of a secret."""

    def __init__(self, message: str, *, source: str = "", line: int | None = None) -> None:
        where = source + (f", line {line}" if line is not None else "")
        super().__init__(f"{where}: {message}" if where else message)
        self.source = source
        self.line = line


def _lines(node: yaml.Node, loc: Loc, out: dict[Loc, int]) -> None:
    """Record the line (1-based) of every key and list item under `node`."""
    out[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            out[(*loc, key)] = key_node.start_mark.line + 1
            _lines(value_node, (*loc, key), out)
            out[(*loc, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _lines(item, (*loc, index), out)


def _dotted(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _key_path(loc: Loc, lines: Mapping[Loc, int]) -> Loc:
    """`loc` without the names pydantic adds for a union's members ("Target", "str"):
    a part stays if the file has that key, if it is an index, or if it is the last (a
    missing field is named, though the file lacks it)."""
    if not lines:
        return loc
    kept: Loc = ()
    for index, part in enumerate(loc):
        candidate = (*kept, part)
        if candidate in lines or isinstance(part, int) or index == len(loc) - 1:
            kept = candidate
    return kept


def _interpolate(value: Any, loc: Loc, source: str, lines: Mapping[Loc, int]) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = os.environ.get(name)
            if found is not None:
                return found
            if default is not None:
                return default
            raise ConfigError(
                f"{_dotted(loc)}: environment variable {name} is not set",
                source=source,
                line=lines.get(loc),
            )

        return _ENV.sub(substitute, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, (*loc, k), source, lines) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*loc, i), source, lines) for i, v in enumerate(value)]
    return value


def _read(source: str | Path | Mapping[str, Any]) -> tuple[Any, str, dict[Loc, int]]:
    if isinstance(source, Mapping):
        return dict(source), "<config>", {}
    if isinstance(source, Path) or (
        "\n" not in source and Path(source).suffix in (".yaml", ".yml")
    ):
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config: {exc.strerror}", source=str(path)) from None
        name = str(path)
    else:
        text, name = source, "<config>"
    lines: dict[Loc, int] = {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"not valid YAML: {problem}",
            source=name,
            line=mark.line + 1 if mark is not None else None,
        ) from None
    if node is not None:
        _lines(node, (), lines)
    return data, name, lines


def load_config(source: str | Path | Mapping[str, Any]) -> BastionConfig:
    """Parse and validate a config from a path, YAML text, or a mapping."""
    data, name, lines = _read(source)
    if not isinstance(data, dict):
        raise ConfigError("the config must be a mapping at the top level", source=name)
    data = _interpolate(data, (), name, lines)
    try:
        return BastionConfig.model_validate(data)
    except ValidationError as exc:
        # The deepest error says most: of a union (a name or a `{model, retries}`) it is
        # the member the value was meant as, not "should be a valid string".
        first = max(exc.errors(), key=lambda error: len(error["loc"]))
        loc = _key_path(tuple(p for p in first["loc"] if isinstance(p, str | int)), lines)
        line = lines.get(loc) or lines.get(loc[:-1])
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{_dotted(loc)}: {message}{more}", source=name, line=line) from None
