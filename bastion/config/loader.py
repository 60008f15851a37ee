"""Reading a config: YAML with line numbers, `${ENV}` secrets, errors that say where.

ConfigError: bastion.yaml, line 7, endpoints[0].timeouts.connect: not a duration: 'fast'
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import structlog
import yaml
from pydantic import BaseModel, ValidationError

from bastion.config.errors import ConfigError, FieldError, Loc, dotted
from bastion.config.schema import BastionConfig
from bastion.config.trust import ENV_REFERENCE, ConfigTrust, TrustSettings, literal_secrets

_log = structlog.get_logger("bastion.config")
M = TypeVar("M", bound=BaseModel)


def _lines(node: yaml.Node, loc: Loc, out: dict[Loc, int]) -> None:
    """Record the line (1-based) of every key and list item under `node`."""
    out[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            _lines(value_node, (*loc, key), out)
            out[(*loc, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _lines(item, (*loc, index), out)


def _key_path(loc: Loc, data: Any, missing: bool) -> Loc:
    """`loc` without the names pydantic adds for a union's members ("Target", "str"):
    a part stays where the document has it, and a `missing` field is named though
    the document lacks it."""
    kept: Loc = ()
    node = data
    for index, part in enumerate(loc):
        present = (isinstance(node, Mapping) and part in node) or (
            isinstance(node, list | tuple) and isinstance(part, int) and part < len(node)
        )
        if present:
            node = node[part]
        elif not (missing and index == len(loc) - 1):
            continue
        kept = (*kept, part)
    return kept


def _interpolate(
    value: Any, loc: Loc, source: str, lines: Mapping[Loc, int], trust: ConfigTrust | None
) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if trust is not None and not trust.allows_env(name):
                # Refused before the environment is read (the refusals say so first).
                raise ConfigError(
                    f"{dotted(loc)}: environment variable {name} is not allowed here",
                    source=source,
                    line=lines.get(loc),
                    field=dotted(loc),
                )
            found = os.environ.get(name)
            if found is not None:
                return found
            if default is not None:
                return str(default)
            raise ConfigError(
                f"{dotted(loc)}: environment variable {name} is not set",
                source=source,
                line=lines.get(loc),
                field=dotted(loc),
            )

        return ENV_REFERENCE.sub(substitute, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, (*loc, k), source, lines, trust) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*loc, i), source, lines, trust) for i, v in enumerate(value)]
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
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"the config is not UTF-8 text (byte {exc.start} cannot be decoded)",
                source=str(path),
            ) from None
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


def _line(loc: Loc, lines: Mapping[Loc, int]) -> int | None:
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get(())


def _invalid(
    exc: ValidationError, data: Any, name: str, lines: Mapping[Loc, int], within: Loc
) -> ConfigError:
    """One `ConfigError` for a `ValidationError` of the section at `within` of the
    document `data`: its deepest error, at its line.

    Of a union (a name or a `{model, retries}`) the deepest error is the member the
    value was meant as; the other members' errors, and the errors of the entries
    around it that failed because it did, say nothing more and are not counted."""
    errors = exc.errors()

    def where(error: Any) -> Loc:
        loc = (*within, *(p for p in error["loc"] if isinstance(p, str | int)))
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError):
            loc = (*loc, *cause.loc)
        return _key_path(loc, data, error["type"] == "missing")

    first = max(errors, key=lambda error: len(where(error)))
    loc = where(first)
    others = sum(1 for e in errors if where(e) != loc[: len(where(e))])
    more = f" (and {others} more)" if others else ""
    message = first["msg"].removeprefix("Value error, ")
    return ConfigError(
        f"{dotted(loc)}: {message}{more}", source=name, line=_line(loc, lines), field=dotted(loc)
    )


def _validate(
    model: type[M],
    value: Any,
    data: Any,
    name: str,
    lines: Mapping[Loc, int],
    within: Loc = (),
) -> M:
    """`value`, the section at `within` of the document `data`, as a `model`."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise _invalid(exc, data, name, lines, within) from None


def _trust_settings(data: Mapping[str, Any], name: str, lines: Mapping[Loc, int]) -> TrustSettings:
    """The document's trust settings as written (before `${VAR}` is resolved)."""
    server = data.get("server")
    if not isinstance(server, Mapping):
        return TrustSettings()
    written = {k: v for k, v in server.items() if k in TrustSettings.model_fields}
    return _validate(TrustSettings, written, data, name, lines, ("server",))


def load_config(
    source: str | Path | Mapping[str, Any], *, trust: ConfigTrust | None = None
) -> BastionConfig:
    """Parse and validate a config from a path, YAML text, or a mapping.

    A path or text is judged against `trust` (see `bastion.config.trust`) before a
    variable is read or a module imported: a config sent over HTTP against the policy
    of the server's file; without `trust`, against the policy the document sets for
    itself (the operator's file). A mapping comes from Python code, which is trusted:
    it is judged only when `trust` is given. The config's own policy, or `trust`, is
    `config.trust`."""
    data, name, lines = _read(source)
    if not isinstance(data, dict):
        raise ConfigError("the config must be a mapping at the top level", source=name)
    settings = _trust_settings(data, name, lines)
    judge = trust if trust is not None else ConfigTrust.of_document(data, settings)
    judged = trust is not None or not isinstance(source, Mapping)
    if judged:
        for loc, why in judge.refusals(data, settings):
            raise ConfigError(
                f"{dotted(loc)}: {why}", source=name, line=_line(loc, lines), field=dotted(loc)
            )
        if judge.literal_secrets and next(literal_secrets(data), None) is not None:
            _log.warning(
                "config holds secrets as literals (server.allow_literal_secrets): anyone "
                "who reads it has them; use ${VAR}",
                source=name,
            )
    data = _interpolate(data, (), name, lines, judge if judged else None)
    config = _validate(BastionConfig, data, data, name, lines)
    config.attach_trust(judge)
    return config
