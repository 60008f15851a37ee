"""The request side of `bastion.models.h1`: where a request goes (`H1Target`, parsed
once per URL) and its head, built as one string and checked against request splitting."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from bastion.models.transport_options import ProxyURL

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters left as they are in a path; anything else (spaces, non-ASCII) is
# percent-encoded, as yarl does for aiohttp. "%" stays: the URL may be encoded already.
_PATH_SAFE = "/?#[]@!$&'()*+,;=:%~-._"
_HOST = re.compile(r"[a-z0-9._\-:%]+")
# Framing is ours: a caller's value would contradict the body we send.
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})
# Methods that anticipate a body: these get "Content-Length: 0" when sent without one.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True, slots=True)
class H1Target:
    """Where requests go: parsed once per endpoint URL. `path` includes the query."""

    scheme: str
    host: str
    port: int
    path: str
    # The Host header's value, derived once (brackets for IPv6, port if not default).
    authority: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port != _DEFAULT_PORTS.get(self.scheme):
            host = f"{host}:{self.port}"
        object.__setattr__(self, "authority", host)

    @classmethod
    def parse(cls, url: str) -> H1Target:
        """The target of an http(s) URL; ValueError naming what is wrong otherwise."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"invalid URL {url!r}: {exc}") from exc
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise ValueError(f"unsupported URL scheme {parts.scheme!r} (only http and https)")
        if parts.username is not None or parts.password is not None:
            # Not echoed: the URL holds a password.
            raise ValueError("credentials in the URL are not supported: send a header")
        host = parts.hostname or ""
        if not host:
            raise ValueError(f"no host in URL {url!r}")
        if not host.isascii():
            host = host.encode("idna").decode("ascii")
        if not _HOST.fullmatch(host):
            raise ValueError(f"invalid host {host!r} in URL {url!r}")
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        return cls(scheme, host, port or _DEFAULT_PORTS[scheme], quote(path, safe=_PATH_SAFE))


def request_head(
    method: str,
    target: H1Target,
    headers: Mapping[str, str],
    body: bytes | None,
    proxy: ProxyURL | None = None,
) -> bytes:
    host = target.authority
    path = target.path
    fields = []
    for name, value in headers.items():
        lowered = name.lower()
        if lowered == "host":
            host = value  # a caller's Host wins, as in aiohttp
        elif lowered in _FRAMING_HEADERS:
            raise ValueError(f"the {name} header is set by H1Pool from the body")
        else:
            fields.append(f"{name}: {value}\r\n")
    if body is not None:
        length = f"Content-Length: {len(body)}\r\n"
    else:
        length = "Content-Length: 0\r\n" if method in _BODY_METHODS else ""
    if proxy is not None:
        # Plain http through a proxy: the absolute form names the target (RFC 9112 §3.2.2).
        path = f"http://{target.authority}{path}"
        if proxy.authorization is not None:
            fields.append(f"Proxy-Authorization: {proxy.authorization}\r\n")
    text = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{length}{''.join(fields)}\r\n"
    # One count over the whole head instead of a check per value: a CR or LF smuggled
    # into the method, Host or any header would add a line (request splitting).
    lines = 3 + len(fields) + (1 if length else 0)
    if text.count("\n") != lines or text.count("\r") != lines:
        raise ValueError("CR or LF in the method or a header: refusing to send")
    if not method.isalpha():
        raise ValueError(f"invalid HTTP method {method!r}")
    return text.encode()


__all__ = ["H1Target", "request_head"]
