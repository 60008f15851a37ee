"""An endpoint's `proxy:` and `tls:` settings, checked at load: a proxy URL the client
cannot use, a file that is not there or a certificate and key that do not belong
together is a config error naming the field, not a failure at the first request."""

from __future__ import annotations

import os
import ssl
from typing import Literal

from pydantic import field_validator, model_validator

from bastion.models.transport_options import ProxyURL, TlsOptions, TransportOptions
from bastion.resilience.settings import Flag, Frozen

# `proxy:` — a URL (http://[user:pass@]host:port), false (never a proxy, whatever the
# environment says) or absent (HTTPS_PROXY / HTTP_PROXY / NO_PROXY from the environment).
ProxySetting = str | Literal[False] | None


def check_proxy(value: ProxySetting) -> ProxySetting:
    """The `proxy:` value, or ValueError (without the URL's credentials in it)."""
    if isinstance(value, str):
        ProxyURL.parse(value)
    return value


class TlsConfig(Frozen):
    """`tls:` — `ca_file` (PEM CAs to trust instead of the system's), `cert_file` and
    `key_file` (a client certificate; the key may be inside `cert_file`), `verify`."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: Flag = True

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        if value is not None:
            if not os.path.isfile(value):
                raise ValueError(f"no such file: {value}")
            if not os.access(value, os.R_OK):
                raise ValueError(f"cannot read {value}")
        return value

    @model_validator(mode="after")
    def _usable(self) -> TlsConfig:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file (the client certificate)")
        checks = [("ca_file", TlsOptions(ca_file=self.ca_file))]
        if self.cert_file is not None:
            checks.append(("cert_file/key_file", TlsOptions(None, self.cert_file, self.key_file)))
        for field, options in checks:
            try:
                options.context()
            except ssl.SSLError as exc:
                raise ValueError(f"{field}: not a usable certificate or key: {exc}") from None
        return self

    def options(self) -> TlsOptions:
        return TlsOptions(self.ca_file, self.cert_file, self.key_file, self.verify)


def transport_options(proxy: ProxySetting, tls: TlsConfig | None) -> TransportOptions:
    """The runtime `TransportOptions` of an endpoint's `proxy:` and `tls:`."""
    return TransportOptions(
        proxy=proxy if isinstance(proxy, str) else None,
        trust_env=proxy is not False,
        tls=tls.options() if tls is not None else TlsOptions(),
    )


__all__ = ["ProxySetting", "TlsConfig", "check_proxy", "transport_options"]
