"""How an endpoint's upstream connections are made: proxy, TLS trust and identity.

`TransportOptions` rides on `Endpoint.transport`; the default transport (`H1Pool`)
reads it when it is created. Everything is checked when the options are built
(`TlsOptions.context()`, `ProxyURL.parse`), which the config loader does at load, so a
wrong path or URL is a config error naming the field, not a failure at the first call.

Proxy URLs may carry credentials (`http://user:pass@proxy:3128`): they are sent as
`Proxy-Authorization` and appear in no repr, log line or error message (errors name
the proxy as host:port).
"""

from __future__ import annotations

import base64
import ssl
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

# The schemes a proxy URL may have: a plain-HTTP proxy (CONNECT for https targets,
# absolute-form requests for http ones).
_PROXY_SCHEMES = frozenset({"http"})


@dataclass(frozen=True, slots=True)
class ProxyURL:
    """A parsed proxy: where it is and the `Proxy-Authorization` value, if any."""

    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        """host:port, for messages (never the credentials)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @classmethod
    def parse(cls, url: str) -> ProxyURL:
        """ValueError, without the URL's credentials in it, for anything but
        `http://[user:pass@]host[:port]`."""
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"invalid proxy URL: {_scrubbed(str(exc), url)}") from None
        scheme = parts.scheme.lower()
        if scheme not in _PROXY_SCHEMES:
            shown = parts.scheme or "none"
            raise ValueError(f"proxy URL scheme must be http://, not {shown!r}")
        if not parts.hostname:
            raise ValueError("proxy URL has no host")
        authorization = None
        if parts.username is not None:
            secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(secret.encode()).decode("ascii")
        return cls(parts.hostname, port or 80, authorization)


def _scrubbed(text: str, url: str) -> str:
    parts = urlsplit(url) if "://" in url else None
    if parts is not None and parts.password:
        text = text.replace(parts.password, "***")
    return text


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """Trust and identity for https upstreams.

    `ca_file`: PEM bundle of the CAs to trust instead of the system's. `cert_file` and
    `key_file`: a client certificate (mutual TLS); the key may sit in `cert_file`.
    `verify=False` accepts any certificate: for a test rig, never for production.
    """

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True

    def context(self) -> ssl.SSLContext:
        """The SSL context these options describe. OSError for a file that cannot be
        read, ssl.SSLError for one that is not what it should be, ValueError for a key
        without a certificate."""
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file")
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    @property
    def is_default(self) -> bool:
        return self == _DEFAULT_TLS


_DEFAULT_TLS = TlsOptions()


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """An endpoint's connection options.

    `proxy`: a proxy URL for every request of this endpoint (wins over the environment).
    `trust_env`: with no `proxy`, take HTTPS_PROXY / HTTP_PROXY / NO_PROXY from the
    environment (as curl and requests do); False connects directly whatever it says.
    `tls`: CA bundle, client certificate, verification.
    """

    proxy: str | None = field(default=None, repr=False)
    trust_env: bool = True
    tls: TlsOptions = field(default_factory=TlsOptions)

    def proxies(self) -> Proxies:
        """Where this endpoint's requests go, decided now (the environment is read once)."""
        if self.proxy is not None:
            return Proxies(explicit=ProxyURL.parse(self.proxy))
        if not self.trust_env:
            return Proxies()
        found = urllib.request.getproxies_environment()
        by_scheme = {s: ProxyURL.parse(found[s]) for s in ("http", "https") if found.get(s)}
        return Proxies(by_scheme=by_scheme, no_proxy=found.get("no", ""))


@dataclass(frozen=True, slots=True)
class Proxies:
    """The proxy for each target: an explicit one, or the environment's per scheme
    minus NO_PROXY's hosts."""

    explicit: ProxyURL | None = None
    by_scheme: Mapping[str, ProxyURL] = field(default_factory=dict)
    no_proxy: str = ""  # NO_PROXY as given: host suffixes, comma-separated, or "*"

    def for_target(self, scheme: str, host: str, port: int) -> ProxyURL | None:
        if self.explicit is not None:
            return self.explicit
        proxy = self.by_scheme.get(scheme)
        if proxy is None:
            return None
        if self.no_proxy and urllib.request.proxy_bypass_environment(  # type: ignore[attr-defined]
            f"{host}:{port}", {"no": self.no_proxy}
        ):
            return None
        return proxy


__all__ = ["Proxies", "ProxyURL", "TlsOptions", "TransportOptions"]
