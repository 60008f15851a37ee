"""The errors of the hand-written HTTP/1.1 client (`bastion.models.h1`).

Each also subclasses the builtin a generic handler would catch, so code that knows
nothing of this client still does the right thing::

    H1Error
    ├── H1ConnectError(ConnectionError)    refused, unreachable, DNS failure (cause chained)
    ├── H1ConnectTimeout(TimeoutError)     connecting took longer than `connect_timeout`
    ├── H1TLSError(ConnectionError)        TLS handshake or certificate rejected
    ├── H1Disconnected(ConnectionError)    server closed before the response was complete
    ├── H1InvalidURL(ValueError)           a URL the pool cannot send to (scheme, host)
    └── H1ProtocolError(ValueError)        malformed response (wraps httptools' parser error)
"""

from __future__ import annotations


class H1Error(Exception):
    """Any failure of an `H1Pool` request."""


class H1ConnectError(H1Error, ConnectionError):
    """The connection could not be made: refused, unreachable or a failed DNS lookup."""


class H1ConnectTimeout(H1Error, TimeoutError):
    """Connecting (TCP and TLS handshake) took longer than the pool's `connect_timeout`."""


class H1TLSError(H1Error, ConnectionError):
    """The TLS handshake failed or the server's certificate was rejected."""


class H1Disconnected(H1Error, ConnectionError):
    """The server closed the connection before the response was complete."""


class H1InvalidURL(H1Error, ValueError):
    """The URL is not one the pool can send to (not http(s), no host, credentials in it)."""


class H1ProtocolError(H1Error, ValueError):
    """The server's answer is not valid HTTP/1.1."""


__all__ = [
    "H1ConnectError",
    "H1ConnectTimeout",
    "H1Disconnected",
    "H1Error",
    "H1InvalidURL",
    "H1ProtocolError",
    "H1TLSError",
]
