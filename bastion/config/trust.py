"""What a config may reach on this host: the modules its tools come from, the
environment variables it reads, and whether it may hold secrets as literals.

A config names Python callables (`agents.*.tools`, a group's `degraded.handler`), and
importing one runs its module; it names environment variables, and whatever it reads
can be sent to the `base_url` it names. The file the server started from is the
operator's: its policy (`ConfigTrust.of_document`) allows

- tools from the modules in `server.tool_modules` (prefixes on dotted boundaries), from
  the operator's own modules that the file itself names (found on the path, neither the
  standard library nor an installed package), and from `bastion.demo.tools`;
- any variable it references; `${VAR}` for every secret unless
  `server.allow_literal_secrets: true`.

A config sent over HTTP (`PUT /api/v1/config`) is judged against the policy of the
file the server started from, not its own: it may not change those three settings,
its tools must come from the allowed modules, and it may read only the variables the
file references or lists in `server.env_allow`. Everything here runs on the parsed
document, before any module is imported or any variable is read.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import site
import sys
import sysconfig
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, StrictBool

from bastion.config.errors import Loc
from bastion.resilience.settings import Frozen

ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# bastion's own tools for the demo: shipped with it, and harmless to import.
DEMO_TOOLS = "bastion.demo.tools"

ModuleName = Annotated[str, Field(pattern=r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class TrustSettings(Frozen):
    """The `server:` settings that make the policy. Read from the document as written
    (before `${VAR}` is resolved), so that the environment cannot widen them."""

    tool_modules: tuple[ModuleName, ...] = ()
    env_allow: tuple[EnvName, ...] = ()
    allow_literal_secrets: StrictBool = False


TRUST_FIELDS = tuple(TrustSettings.model_fields)


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    """Whether `module` is one of `prefixes` or inside one (`a.b` is within `a`, `ab` not)."""
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


@functools.cache
def _library_dirs() -> tuple[Path, ...]:
    paths = {*site.getsitepackages(), site.getusersitepackages()}
    kinds = ("stdlib", "platstdlib", "purelib", "platlib")
    paths |= {sysconfig.get_paths()[kind] for kind in kinds}
    return tuple(Path(p).resolve() for p in paths if p)


def is_operator_module(module: str) -> bool:
    """Whether `module` is the operator's own code: not bastion, not the standard
    library, not an installed package. Its top-level package is looked up on the path
    without importing anything. A module not found counts as the operator's: importing
    it fails, naming the path, and runs nothing."""
    top = module.partition(".")[0]
    if top == "bastion" or top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return False
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return True
    places = [spec.origin] if spec.origin and spec.has_location else []
    places += list(spec.submodule_search_locations or ())
    if not places:  # built-in or frozen
        return False
    libraries = _library_dirs()
    return not any(Path(p).resolve().is_relative_to(lib) for p in places for lib in libraries)


def _strings(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, (*loc, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, (*loc, index))


def env_references(data: Mapping[str, Any]) -> Iterator[tuple[Loc, str]]:
    """Every `${NAME}` in the document, with where it is."""
    for loc, text in _strings(data, ()):
        for match in ENV_REFERENCE.finditer(text):
            yield loc, match.group(1)


def _entries(data: Mapping[str, Any], section: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    entries = data.get(section)
    if isinstance(entries, Mapping):
        for name, entry in entries.items():
            if isinstance(entry, Mapping):
                yield str(name), entry


def _items(data: Mapping[str, Any], *path: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    node: Any = data
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    if isinstance(node, list):
        for index, item in enumerate(node):
            if isinstance(item, Mapping):
                yield index, item


def import_paths(data: Mapping[str, Any]) -> Iterator[tuple[Loc, str]]:
    """Every "module:function" the document would import: agents' tools, and groups'
    degraded handlers."""
    for name, agent in _entries(data, "agents"):
        tools = agent.get("tools")
        if isinstance(tools, list):
            for index, path in enumerate(tools):
                if isinstance(path, str):
                    yield ("agents", name, "tools", index), path
    for name, group in _entries(data, "models"):
        degraded = group.get("degraded")
        if isinstance(degraded, Mapping) and isinstance(degraded.get("handler"), str):
            yield ("models", name, "degraded", "handler"), degraded["handler"]


# Header names that carry credentials.
_SECRET_HEADER = re.compile(r"auth|key|token|secret|password|cookie|session", re.IGNORECASE)


def _has_reference(value: Any) -> bool:
    return isinstance(value, str) and ENV_REFERENCE.search(value) is not None


def _url_password_literal(value: Any) -> bool:
    if not isinstance(value, str) or "@" not in value:
        return False
    try:
        password = urlsplit(value).password
    except ValueError:
        return False  # not a URL: the field's own check says so
    return bool(password) and not _has_reference(password)


def literal_secrets(data: Mapping[str, Any]) -> Iterator[Loc]:
    """Where the document holds a secret as written rather than as `${VAR}`: an
    endpoint's `api_key`, a credential header or a proxy password; a client key
    (`auth.keys[].key`) or the users' token secret (`auth.user_tokens.secret`); a
    password in `memory.store`."""
    for index, endpoint in _items(data, "endpoints"):
        loc: Loc = ("endpoints", index)
        api_key = endpoint.get("api_key")
        if api_key is not None and not _has_reference(api_key):
            yield (*loc, "api_key")
        if _url_password_literal(endpoint.get("proxy")):
            yield (*loc, "proxy")
        headers = endpoint.get("headers")
        pairs: list[tuple[Loc, Any, Any]] = []
        if isinstance(headers, Mapping):
            pairs = [((*loc, "headers", k), k, v) for k, v in headers.items()]
        elif isinstance(headers, list):
            pairs = [
                ((*loc, "headers", i), pair[0], pair[1])
                for i, pair in enumerate(headers)
                if isinstance(pair, list | tuple) and len(pair) == 2
            ]
        for where, name, value in pairs:
            if isinstance(name, str) and _SECRET_HEADER.search(name) and not _has_reference(value):
                yield where
    for index, key in _items(data, "auth", "keys"):
        if key.get("key") is not None and not _has_reference(key.get("key")):
            yield ("auth", "keys", index, "key")
    auth = data.get("auth")
    tokens = auth.get("user_tokens") if isinstance(auth, Mapping) else None
    secret = tokens.get("secret") if isinstance(tokens, Mapping) else None
    if secret is not None and not _has_reference(secret):
        yield ("auth", "user_tokens", "secret")
    memory = data.get("memory")
    if isinstance(memory, Mapping) and _url_password_literal(memory.get("store")):
        yield ("memory", "store")


_NO_SETTINGS = TrustSettings()


@dataclass(frozen=True, slots=True)
class ConfigTrust:
    """A policy a config is judged against (see the module docs).

    `tool_modules` are the module prefixes tools and handlers may come from;
    `env_names` the variables `${...}` may read (None: any); `literal_secrets` whether
    secrets may be written as literals; `declared` the settings of the document that
    made the policy, which a config judged against it may not change. The default is
    the narrowest: bastion's demo tools, no variable, no literal secret."""

    tool_modules: tuple[str, ...] = (DEMO_TOOLS,)
    env_names: frozenset[str] | None = frozenset()
    literal_secrets: bool = False
    declared: TrustSettings = _NO_SETTINGS

    @classmethod
    def of_document(cls, data: Mapping[str, Any], declared: TrustSettings) -> ConfigTrust:
        """The policy the operator's own document (`declared` being its settings)
        sets: for itself and for the configs that later come over HTTP."""
        named = {path.partition(":")[0] for _, path in import_paths(data)}
        own = sorted(m for m in named if m and is_operator_module(m))
        modules = tuple(dict.fromkeys((DEMO_TOOLS, *declared.tool_modules, *own)))
        names = {name for _, name in env_references(data)} | set(declared.env_allow)
        return cls(modules, frozenset(names), declared.allow_literal_secrets, declared)

    def allows_module(self, module: str) -> bool:
        return within(module, self.tool_modules)

    def allows_env(self, name: str) -> bool:
        return self.env_names is None or name in self.env_names

    def refusals(
        self, data: Mapping[str, Any], settings: TrustSettings
    ) -> Iterator[tuple[Loc, str]]:
        """What in `data` (whose trust settings are `settings`) this policy refuses,
        as (where, why); nothing is imported or read."""
        server = data.get("server")
        written = server if isinstance(server, Mapping) else {}
        for name in TRUST_FIELDS:
            if name in written and getattr(settings, name) != getattr(self.declared, name):
                yield (
                    ("server", name),
                    f"may not differ from the server's config file (server.{name} is "
                    "the operator's, set only in that file)",
                )
        for loc, path in import_paths(data):
            module = path.partition(":")[0]
            if module and not self.allows_module(module):
                yield loc, f"{path!r} is outside the allowed tool modules (server.tool_modules)"
        for loc, name in env_references(data):
            if not self.allows_env(name):
                yield (
                    loc,
                    f"environment variable {name} is not one this server's config file "
                    "references or lists in server.env_allow",
                )
        if not self.literal_secrets:
            for loc in literal_secrets(data):
                yield (
                    loc,
                    "a secret must come from the environment: write ${VAR} "
                    "(or set server.allow_literal_secrets: true)",
                )
