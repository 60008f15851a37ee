"""A tool's argument model and JSON schema, read from its signature and docstring.

Type hints become a pydantic model (one field per parameter, defaults kept); the
docstring's summary becomes the tool's description, and its "Args:" (Google) or
"Parameters" (numpy) section gives each parameter's description. Parameters typed
`RuntimeContext` or `ToolContext` are injected by the agent, not shown to the model.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

_PARAM_SECTIONS = frozenset({"args", "arguments", "parameters", "params", "keyword args"})
_OTHER_SECTIONS = frozenset(
    {
        "returns",
        "return",
        "yields",
        "raises",
        "examples",
        "example",
        "notes",
        "note",
        "see also",
        "references",
        "attributes",
        "warnings",
        "other parameters",
    }
)
_GOOGLE_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?::.*)?$")
_UNDERLINE = re.compile(r"^-{3,}\s*$")


@dataclass(frozen=True, slots=True)
class Docstring:
    summary: str
    params: Mapping[str, str]


def parse_docstring(doc: str) -> Docstring:
    """Split a Google- or numpy-style docstring into its summary and parameter notes."""
    lines = inspect.cleandoc(doc).splitlines() if doc else []
    summary: list[str] = []
    params: dict[str, list[str]] = {}
    section: str | None = None
    numpy = False
    entry_indent: int | None = None
    current: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        following = lines[i + 1].strip() if i + 1 < len(lines) else ""
        name = stripped.rstrip(":").strip().lower()
        underlined = bool(_UNDERLINE.match(following))
        is_header = (name in _PARAM_SECTIONS or name in _OTHER_SECTIONS) and (
            stripped.endswith(":") or underlined
        )
        if is_header:
            section = "params" if name in _PARAM_SECTIONS else "other"
            numpy = underlined
            entry_indent = current = None
            i += 2 if underlined else 1
            continue
        i += 1
        if section is None:
            summary.append(stripped)
            continue
        if section != "params" or not stripped:
            continue
        indent = len(line) - len(line.lstrip())
        if entry_indent is None:
            entry_indent = indent
        if indent <= entry_indent:
            match = (_NUMPY_ENTRY if numpy else _GOOGLE_ENTRY).match(stripped)
            if match is None:
                current = None
                continue
            current = match.group(1)
            params[current] = [] if numpy else [match.group(2).strip()]
        elif current is not None:
            params[current].append(stripped)
    text = "\n".join(summary).strip()
    text = re.sub(r"\n{3,}", "\n\n", text)
    return Docstring(text, {k: " ".join(p for p in v if p) for k, v in params.items()})


@dataclass(frozen=True, slots=True)
class Signature:
    """What the agent needs to call a function as a tool."""

    description: str
    model: type[BaseModel]
    schema: Mapping[str, Any]
    injected: tuple[tuple[str, type], ...]  # (parameter name, RuntimeContext | ToolContext)


def read_signature(fn: Callable[..., Any], name: str, injectable: tuple[type, ...]) -> Signature:
    """Build the argument model and schema of `fn`; TypeError if it cannot be a tool."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except NameError as exc:
        raise TypeError(f"tool {name!r}: cannot resolve its type hints ({exc})") from None
    doc = parse_docstring(inspect.getdoc(fn) or "")
    fields: dict[str, Any] = {}
    injected: list[tuple[str, type]] = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise TypeError(
                f"tool {name!r}: parameter {param.name!r} must be a named parameter "
                "(no *args, **kwargs or positional-only parameters)"
            )
        hint = hints.get(param.name, Any)
        if hint in injectable:
            injected.append((param.name, hint))
            continue
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hint, Field(default, description=doc.params.get(param.name)))
    model = create_model(
        f"{name}_arguments", __config__=ConfigDict(arbitrary_types_allowed=True), **fields
    )
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return Signature(doc.summary, model, schema, tuple(injected))
